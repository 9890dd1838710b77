"""Customer tiers: the ladder, and the 80/20 value rule (pure).

The value rule sorts customers by value; those whose more valuable peers hold
less than the first cut-off's share of the total value are the first tier
(by default `key` at 80 %), and so on down the cut-offs. Customers of equal
value always share a tier, so the result never depends on input order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Tier:
    name: str
    rank: int
    """1 is the top."""


@dataclass(frozen=True)
class TierLadder:
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(sorted(self.tiers, key=lambda t: t.rank)))

    @property
    def top(self) -> Tier:
        return self.tiers[0]

    @property
    def lowest(self) -> Tier:
        return self.tiers[-1]

    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def known(self, name: str | None) -> str | None:
        """`name` lower-cased when it is on the ladder, else None."""
        if name is None:
            return None
        name = name.strip().lower()
        return name if name in self.names() else None

    def effective(self, name: str | None) -> str:
        """The tier a customer is treated as: unknown or missing tiers are the lowest."""
        return self.known(name) or self.lowest.name

    def ranks(self) -> dict[str, int]:
        return {t.name: t.rank for t in self.tiers}


def value_tiers(
    values: Mapping[K, float | None], cutoffs: Sequence[tuple[str, float]], rest: str
) -> dict[K, str]:
    """Each customer with a value -> its tier by the value rule.

    `cutoffs` are (tier, cumulative share) from the top down, e.g.
    (("key", 0.8), ("gold", 0.95)). Customers without a value (None) get no
    tier here. When the total value is zero nobody stands out: all are `rest`.
    """
    # str(): a float's shortest decimal form, so 0.7 + 0.1 is exactly 0.8 as in the ledger.
    known = {k: Fraction(str(v)) for k, v in values.items() if v is not None}
    if any(v < 0 for v in known.values()):
        raise ValueError("values must not be negative")
    total = sum(known.values(), Fraction(0))
    if total == 0:
        return {k: rest for k in known}
    limits = [(tier, Fraction(str(share)) * total) for tier, share in cutoffs]
    by_value: dict[Fraction, list[K]] = {}
    for key, value in known.items():
        by_value.setdefault(value, []).append(key)
    result: dict[K, str] = {}
    before = Fraction(0)
    for value in sorted(by_value, reverse=True):
        if value == 0:
            tier = rest  # no value is nobody's key account, whatever the cut-offs
        else:
            tier = next((name for name, limit in limits if before < limit), rest)
        for key in by_value[value]:
            result[key] = tier
        before += value * len(by_value[value])
    return result


def first_known(candidates: Sequence[str | None]) -> str | None:
    """The first tier a source gave, in the campaign's order of sources."""
    return next((c for c in candidates if c is not None), None)
