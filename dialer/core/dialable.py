"""May this number be dialed at all? Deny patterns and the do-not-call decision (pure).

Checked for every lead just before its Originate, whatever happened at
import: lists and patterns change while a campaign runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from dataclasses import dataclass

# Emergency and premium-rate numbers, as digits with an optional leading +.
# Short emergency codes are denied whatever the country prefix the dial
# string may add; premium ranges are given in E.164.
EMERGENCY_PATTERNS = (
    r"^\+?(112|911|999|000|110|119|118|100|101|102|103|108|15|17|18|190|192|193|197|199)$",
    r"^\+?(112|911|999)[0-9]?$",  # "9110"-style misdials still reach the emergency service
)
PREMIUM_PATTERNS = (
    r"^\+1(900|976)[0-9]{7}$",  # NANP premium services
    r"^\+449[0-9]{9}$",  # UK 09 premium rate
    r"^\+4487[0-9]{8}$",  # UK 087 service numbers
    r"^\+3389[0-9]{7}$",  # France 089
    r"^\+49900[0-9]+$",  # Germany 0900
    r"^\+39(89|166|899)[0-9]+$",  # Italy
    r"^\+34(80[3-7])[0-9]{6}$",  # Spain 803-807
    r"^\+61(190)[0-9]+$",  # Australia 190x
)


@dataclass(frozen=True)
class DenyList:
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def with_defaults(cls, extra: Iterable[str] = ()) -> "DenyList":
        return cls(tuple(re.compile(p) for p in (*EMERGENCY_PATTERNS, *PREMIUM_PATTERNS, *extra)))

    def denies(self, phone: str) -> bool:
        return any(p.search(phone) for p in self.patterns)


@dataclass(frozen=True)
class Blocked:
    reason: str
    """The lead's final reason: `denied_number` or `dnc`."""


def dial_block(phone: str, deny: DenyList, on_dnc_list: Set[str]) -> Blocked | None:
    """Why `phone` must not be dialed, or None if it may be."""
    if deny.denies(phone):
        return Blocked("denied_number")
    if phone in on_dnc_list:
        return Blocked("dnc")
    return None
