"""Phone numbers to E.164 and their time zones, with Google's libphonenumber data.

`normalise` turns what a lead file holds (`(212) 555-0123` with a default
region, `+44 20 7946 0018`) into E.164, or says why it cannot: not a number,
not a valid number in its country, or a kind that must never be dialed
(premium rate, emergency). `time_zones` lists the IANA zones a number may be in.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberType
from phonenumbers.phonenumberutil import (
    REGION_CODE_FOR_NON_GEO_ENTITY,
    _number_type_helper,
    country_code_for_valid_region,
    is_number_type_geographical,
)
from phonenumbers import timezone as number_zones
from phonenumbers.shortnumberinfo import connects_to_emergency_number

_UNKNOWN_ZONE = "Etc/Unknown"
_NEVER_DIAL = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
}


class NumberError(ValueError):
    """A number that cannot be imported; the message says why, for the operator."""


class NeverDial(NumberError):
    """A valid number of a kind the dialer never calls: emergency, premium rate, shared cost."""


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
    return read_number(raw, region)[0]


def read_number(raw: str, region: str | None) -> tuple[str, tuple[str, ...]]:
    """`raw` in E.164 and the zones it may be in (see `normalise` and `time_zones`).

    Each libphonenumber look-up is made once (they are what a big import spends
    its time on): the number's type says whether it is valid at all.
    """
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
        raise NeverDial(f"{raw!r} is an emergency number")
    kind = _number_type(number, region_of_number)
    if kind == PhoneNumberType.UNKNOWN:
        where = region_of_number or region or "its country"
        raise NumberError(f"not a valid number in {where}: {raw!r}")
    if kind in _NEVER_DIAL:
        raise NeverDial(f"{raw!r} is {_NEVER_DIAL[kind]}, which the dialer never calls")
    if not is_number_type_geographical(kind, number.country_code):
        zones = number_zones._country_level_time_zones_for_number(number)
    else:
        zones = number_zones.time_zones_for_geographical_number(number)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, tuple(z for z in zones if z != _UNKNOWN_ZONE)


def _number_type(number: phonenumbers.PhoneNumber, region: str | None) -> int:
    """`phonenumbers.number_type`, UNKNOWN for a number not valid in its region (`is_valid_number`),
    with the region already known."""
    if region is None:
        return PhoneNumberType.UNKNOWN
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    if metadata is None:
        return PhoneNumberType.UNKNOWN
    if region != REGION_CODE_FOR_NON_GEO_ENTITY and number.country_code != country_code_for_valid_region(region):
        return PhoneNumberType.UNKNOWN
    return _number_type_helper(phonenumbers.national_significant_number(number), metadata)


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
