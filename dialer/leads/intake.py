"""The one way a lead enters the dialer: CSV import, the control API and customer events.

`LeadIntake.check` turns what a caller gave (text fields, as read from a CSV row or
an API body) into a `LeadRow` or says what is wrong, field by field:

- the number: digits with an optional leading + (spaces, `-`, `.` and `()` ignored);
  with a campaign asking for E.164 (`numbers.format: e164`, the default) normalised
  with libphonenumber in the campaign's region, invalid, emergency, premium-rate and
  shared-cost numbers refused; then the deny patterns (the built-in emergency and
  premium ones and the campaign's `numbers.deny`), tried on every form of the number;
- text fields (name, customer id, tier, extra data): control characters are
  **removed** (NUL and the rest of C0 and C1, DEL; tabs and line breaks stay, as a
  multi-line note in a quoted CSV field is data), surrounding spaces stripped, then
  length-checked. The same cleaning for every way
  in, so a CSV and the API store the same thing. Values that look like spreadsheet
  formulas are data like any other: escaping them is the exporters' business;
- `value` a decimal >= 0 and < 10^12; `timezone` an IANA zone name.

`dial_forms` gives the forms of a stored number that the do-not-call lists are
searched for at dial time, so `2025550188` read in region US matches a listed
`+12025550188` (and an entry stored as written matches too).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from dialer.core.dialable import DenyList
from dialer.leads.phone_numbers import NeverDial, NumberError, NumberPolicy, normalise, read_number

PHONE_SEPARATORS = " -.()"
MIN_PHONE_DIGITS = 3
MAX_PHONE_DIGITS = 20
_PHONE = re.compile(r"\+?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)")
MAX_VALUE = Decimal(10) ** 12
# Same limits as the database columns (dialer.store.schema) and the API's LeadIn.
MAX_CHARS = {"name": 200, "customer_id": 64, "tier": 32, "timezone": 64}
MAX_DATA_KEY_CHARS = 64
_KEPT_CONTROLS = frozenset("\t\n\r")


def clean_text(value: str) -> str:
    """`value` without control characters (but tabs and line breaks), stripped."""
    if value.isprintable():
        return value.strip()
    return "".join(c for c in value if c in _KEPT_CONTROLS or unicodedata.category(c) != "Cc").strip()


@dataclass(frozen=True)
class LeadRow:
    line: int
    """Line in the file where the row starts (0 for a lead from the API)."""
    phone: str
    """E.164, or digits with a leading + as written when the campaign keeps numbers as written."""
    name: str | None = None
    customer_id: str | None = None
    tier: str | None = None
    """Lower-cased, so `Gold` and `gold` are the same tier."""
    value: Decimal | None = None
    timezone: str | None = None
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    field: str
    """`phone`, `name`, `customer_id`, `tier`, `value`, `timezone` or a data key."""
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class LeadRefused(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def phone_shape(raw: str) -> str | None:
    """Digits with an optional leading + once separators are dropped; None if that is not what `raw` is."""
    phone = raw.strip().translate({ord(c): None for c in PHONE_SEPARATORS})
    if not _PHONE.fullmatch(phone):
        return None
    digits = len(phone.removeprefix("+"))
    return phone if MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS else None


@dataclass(frozen=True)
class LeadIntake:
    numbers: NumberPolicy = field(default_factory=NumberPolicy)
    deny: DenyList = field(default_factory=DenyList.with_defaults)
    decimal_comma: bool = False
    """`,` is the decimal mark (a `;`-separated file, as spreadsheets write them in most of Europe)."""

    @classmethod
    def for_campaign(cls, campaign: object, config_region: str | None) -> "LeadIntake":
        """The intake of a campaign (`dialer.config.models.Campaign`): its number format, region and deny rules."""
        rules = campaign.numbers  # type: ignore[attr-defined]
        return cls(numbers=rules.policy(config_region), deny=rules.deny_list())

    def number(self, raw: str) -> str:
        """The number as the campaign stores it; NumberError says why it may not enter."""
        return self._number(raw)[0]

    def _number(self, raw: str) -> tuple[str, tuple[str, ...]]:
        shaped = phone_shape(raw)
        if shaped is None:
            raise NumberError(
                f"not a phone number: {raw!r} (expected {MIN_PHONE_DIGITS}-{MAX_PHONE_DIGITS} digits, "
                "an optional leading +; spaces, -, . and () are ignored)"
            )
        phone, zones = read_number(raw, self.numbers.default_region) if self.numbers.e164 else (shaped, ())
        if any(self.deny.denies(form) for form in {phone, shaped}):
            raise NumberError(f"{raw!r} matches a deny rule (emergency, premium rate or the campaign's numbers.deny)")
        return phone, zones

    def check(self, fields: Mapping[str, str | Decimal | None], data: Mapping[str, str] | None = None, *, line: int = 0) -> LeadRow:
        """A lead from `fields` (phone, name, customer_id, tier, value, timezone: text as given); LeadRefused if not."""
        problems: list[Problem] = []
        phone = None
        number_zones: tuple[str, ...] = ()
        raw_phone = clean_text(str(fields.get("phone") or ""))
        if not raw_phone:
            problems.append(Problem("phone", "no phone number"))
        else:
            try:
                phone, number_zones = self._number(raw_phone)
            except NumberError as exc:
                problems.append(Problem("phone", str(exc)))
        text = {key: self._text(key, fields.get(key), problems) for key in ("name", "customer_id", "tier")}
        value = self._value(fields.get("value"), problems)
        zone = self._zone(fields.get("timezone"), problems)
        if problems or phone is None:
            raise LeadRefused(problems)
        if zone is None and len(number_zones) == 1:
            zone = number_zones[0]
        return LeadRow(
            line=line,
            phone=phone,
            name=text["name"],
            customer_id=text["customer_id"],
            tier=text["tier"].lower() if text["tier"] else None,
            value=value,
            timezone=zone,
            data=clean_data(data or {}),
        )

    @staticmethod
    def _text(key: str, raw: object, problems: list[Problem]) -> str | None:
        if raw is None:
            return None
        value = clean_text(str(raw))
        if len(value) > MAX_CHARS[key]:
            problems.append(Problem(key, f"longer than {MAX_CHARS[key]} characters"))
            return None
        return value or None

    def _value(self, raw: object, problems: list[Problem]) -> Decimal | None:
        if raw is None:
            return None
        if isinstance(raw, Decimal):
            value = raw
        else:
            text = clean_text(str(raw))
            if not text:
                return None
            if not _DECIMAL.fullmatch(text) or ("," in text and not self.decimal_comma):
                problems.append(Problem("value", f"not a number: {text[:40]!r} (e.g. 1250.50, no thousands separators)"))
                return None
            try:
                value = Decimal(text.replace(",", "."))
            except InvalidOperation:
                problems.append(Problem("value", f"not a number: {text[:40]!r}"))
                return None
            raw = text
        if not value.is_finite() or value < 0:
            problems.append(Problem("value", f"must be 0 or more, not {str(raw)[:40]}"))
            return None
        if value >= MAX_VALUE:
            problems.append(Problem("value", f"must be less than {MAX_VALUE:,.0f}"))
            return None
        return value

    @staticmethod
    def _zone(raw: object, problems: list[Problem]) -> str | None:
        if raw is None:
            return None
        name = clean_text(str(raw))
        if not name:
            return None
        try:
            if len(name) > MAX_CHARS["timezone"]:
                raise ValueError(name)
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a region directory such as "America" is not a zone.
            problems.append(Problem("timezone", f"unknown time zone {name[:64]!r} (an IANA name, e.g. America/New_York)"))
            return None
        return name


def clean_data(data: Mapping[str, str]) -> dict[str, str]:
    """Extra fields with clean keys and values; a key that cleans to nothing is dropped."""
    cleaned: dict[str, str] = {}
    for key, value in data.items():
        name = clean_text(str(key))[:MAX_DATA_KEY_CHARS]
        if name:
            cleaned[name] = clean_text(str(value))
    return cleaned


@dataclass(frozen=True)
class DialNumber:
    forms: tuple[str, ...]
    """The stored number first, then its E.164 and national forms: what the do-not-call lists are searched for."""
    never: bool = False
    """An emergency, premium-rate or shared-cost number: never dialed, whatever the lists say."""


def dial_forms(phone: str, numbers: NumberPolicy) -> DialNumber:
    """The stored `phone` read the way the intake reads it, for the check just before a call."""
    forms = [phone]
    shaped = phone_shape(phone)
    if shaped is not None and shaped not in forms:
        forms.append(shaped)
    if not numbers.e164:
        return DialNumber(tuple(forms))
    try:
        e164 = normalise(shaped or phone, numbers.default_region)
    except NeverDial:
        return DialNumber(tuple(forms), never=True)
    except NumberError:
        # Not readable as E.164 (a row from before the intake, a lab number): the
        # lists are searched for it as stored, and the deny patterns still apply.
        return DialNumber(tuple(forms))
    national = phone_shape(
        phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.NATIONAL)
    )
    for form in (e164, national):
        if form is not None and form not in forms:
            forms.append(form)
    return DialNumber(tuple(forms))
