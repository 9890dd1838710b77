"""Phone numbers to E.164 and their time zones, with Google's libphonenumber data.

`normalise` turns what a lead file holds (`(212) 555-0123` with a default
region, `+44 20 7946 0018`) into E.164, or says why it cannot: not a number,
not a valid number in its country, or a kind that must never be dialed
(premium rate, emergency). `time_zones` lists the IANA zones a number may be in.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType
from phonenumbers import timezone as number_zones
from phonenumbers.shortnumberinfo import connects_to_emergency_number

_UNKNOWN_ZONE = "Etc/Unknown"
_NEVER_DIAL = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
}


class NumberError(ValueError):
    """A number that cannot be imported; the message says why, for the operator."""


@dataclass(frozen=True)
class NumberPolicy:
    """How a campaign's lead numbers are read: normalised (with a region for numbers without +) or as written."""

    e164: bool = True
    default_region: str | None = None


def check_region(region: str) -> str:
    region = region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {region!r} (an ISO 3166 country code such as US, GB, DE)")
    return region


def normalise(raw: str, region: str | None) -> str:
    """`raw` in E.164 (`+12125550123`); NumberError if it is not a number that may be dialed."""
    text = raw.strip()
    if not text.startswith("+") and region is None:
        raise NumberError(f"{raw!r} has no country code: write it as +<country><number>, or set numbers.default_region")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except NumberParseException as exc:
        raise NumberError(f"not a phone number: {raw!r} ({exc})") from None
    digits = phonenumbers.national_significant_number(number)
    region_of_number = phonenumbers.region_code_for_number(number)
    if connects_to_emergency_number(digits, region_of_number or region or "ZZ"):
        raise NumberError(f"{raw!r} is an emergency number")
    if not phonenumbers.is_valid_number(number):
        where = region_of_number or region or "its country"
        raise NumberError(f"not a valid number in {where}: {raw!r}")
    kind = phonenumbers.number_type(number)
    if kind in _NEVER_DIAL:
        raise NumberError(f"{raw!r} is {_NEVER_DIAL[kind]}, which the dialer never calls")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def time_zones(e164: str) -> tuple[str, ...]:
    """The zones an E.164 number may be in; empty when unknown (or not E.164)."""
    if not e164.startswith("+"):
        return ()
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return ()
    zones = number_zones.time_zones_for_number(number)
    return tuple(z for z in zones if z != _UNKNOWN_ZONE)
