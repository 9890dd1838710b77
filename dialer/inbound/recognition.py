"""Who is calling, and which campaign's number they called (pure: no I/O).

The caller ID comes from the carrier and is anyone's to forge: whatever it
holds (quotes, line breaks, 500 digits, `anonymous`, nothing) it is either a
phone number in the shape lead numbers have (`dialer.leads.intake.phone_shape`)
or the caller is unknown. A number is then looked up in every form the
do-not-call check uses for a stored lead number (as given, E.164, national),
so `+15551234567`, `15551234567` and `(555) 123-4567` find the same customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dialer.ami.values import caller_id_number, problem_in_header_value
from dialer.leads.intake import dial_forms, phone_shape
from dialer.leads.phone_numbers import NumberPolicy

MAX_CALLER_CHARS = 64
"""A caller ID longer than this is no phone number; it is not even parsed."""


def caller_number(raw: str | None) -> str | None:
    """The caller's number as digits with an optional +, or None for an unknown caller."""
    # A control character (CR, LF, NUL...) anywhere: no number at all, not a trimmed one.
    if raw is None or problem_in_header_value(raw) is not None:
        return None
    text = raw.strip()
    if not text or len(text) > MAX_CALLER_CHARS:
        return None
    return phone_shape(text)


def caller_forms(number: str, policy: NumberPolicy) -> tuple[str, ...]:
    """The forms a stored customer number equal to `number` may take.

    Carriers often send an international number without its `+` (`12025550176`):
    that reading is tried too, after the campaign's own.
    """
    forms = list(dial_forms(number, policy).forms)
    if policy.e164 and not number.startswith("+"):
        forms += [f for f in dial_forms("+" + number, policy).forms if f not in forms]
    return tuple(forms)


def did_key(did: str | None) -> str | None:
    """A dialled number as compared with the configured DIDs: digits only."""
    shaped = caller_number(did)
    return None if shaped is None else shaped.removeprefix("+")


@dataclass(frozen=True)
class DidIndex:
    """Dialled number (digits) -> the campaigns answering on it, by name."""

    campaigns: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, campaigns: Iterable[object]) -> "DidIndex":
        """From `dialer.config.models.Campaign`s with an `inbound` section."""
        found: dict[str, list[str]] = {}
        for campaign in campaigns:
            inbound = getattr(campaign, "inbound", None)
            if inbound is None:
                continue
            numbers = [caller_id_number(campaign.caller_id), *inbound.dids]  # type: ignore[attr-defined]
            for number in numbers:
                key = did_key(number)
                if key is not None and campaign.name not in found.setdefault(key, []):  # type: ignore[attr-defined]
                    found[key].append(campaign.name)  # type: ignore[attr-defined]
        return cls({k: tuple(sorted(v)) for k, v in found.items()})

    def lookup(self, did: str | None) -> tuple[str, ...]:
        """Campaigns answering on `did`, by name; several campaigns may share one number."""
        key = did_key(did)
        return () if key is None else self.campaigns.get(key, ())
