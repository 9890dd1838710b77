"""Parse a CSV file of leads into rows to import and errors to show; no database here.

The file needs a header row with a `phone` (or `number`) column. Known optional columns:
`name`, `customer_id`, `tier`, `value` (a decimal >= 0) and `timezone` (an IANA name
such as `America/New_York`). Header names are matched ignoring case, surrounding spaces,
and spaces or hyphens inside (`Customer ID` is `customer_id`). Every other named column
is kept as text in `LeadRow.data`, under its header as written.

With a `NumberPolicy` asking for E.164 (a campaign's `numbers.format: e164`), each number
is normalised with libphonenumber (`dialer.leads.phone_numbers`): a number without `+` is
read in the policy's default region, an invalid, premium-rate or emergency number is
rejected with its line, and a row without a `timezone` gets the number's zone when the
number maps to exactly one.

A bad row is reported with its line in the file (a quoted field spanning lines counts
every line, as an editor shows them) and is not imported; the good rows still are.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.leads.phone_numbers import NumberError, NumberPolicy, normalise, time_zones

PHONE_SEPARATORS = " -.()"
_PHONE = re.compile(r"\+?[0-9]+")
MIN_PHONE_DIGITS = 3
MAX_PHONE_DIGITS = 20
_DECIMAL = re.compile(r"[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)")
_DELIMITERS = (",", ";", "\t")
KNOWN_COLUMNS = ("phone", "name", "customer_id", "tier", "value", "timezone")
_PHONE_ALIAS = "number"


@dataclass(frozen=True)
class LeadRow:
    line: int
    """Line in the file where the row starts."""
    phone: str
    """Digits only, with a leading + if the file had one."""
    name: str | None = None
    customer_id: str | None = None
    tier: str | None = None
    """Lower-cased, so `Gold` and `gold` are the same tier."""
    value: Decimal | None = None
    timezone: str | None = None
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    """The header name of the offending column; None when the whole row or file is at fault."""
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.column is None else f"line {self.line}: {self.column}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class LeadImport:
    rows: list[LeadRow]
    errors: list[RowError]


def parse_leads_csv(source: str | Path, numbers: NumberPolicy | None = None) -> LeadImport:
    """Parse leads from a file (a `Path`) or from CSV text (a `str`).

    Without `numbers`, phone numbers are kept as written (digits and a leading +).

    A file must be UTF-8 (a byte-order mark is fine). Separators: `,`, `;` or tab,
    whichever the header line uses most.
    """
    if isinstance(source, Path):
        raw = source.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            return LeadImport([], [RowError(line, None, "not UTF-8 text; save the file as UTF-8 CSV")])
    else:
        text = source.removeprefix("\ufeff")
    return _Parser(text, numbers or NumberPolicy(e164=False)).parse()


class _Parser:
    def __init__(self, text: str, numbers: NumberPolicy) -> None:
        self.numbers = numbers
        self.delimiter = _sniff_delimiter(text)
        self.reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
        self.rows: list[LeadRow] = []
        self.errors: list[RowError] = []
        self.columns: list[str] = []
        self.first_line_of_phone: dict[str, int] = {}

    def parse(self) -> LeadImport:
        records = self._records()
        header = next(records, None)
        if header is None:
            empty = RowError(1, None, "the file is empty; expected a header row with a 'phone' column")
            return LeadImport([], [*self.errors, empty])
        header_errors = self._read_header(*header)
        if header_errors:
            return LeadImport([], [*self.errors, *header_errors])
        for line, cells in records:
            self._read_row(line, cells)
        return LeadImport(self.rows, self.errors)

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(first line, cells) of each non-blank record; malformed ones become errors."""
        end_of_previous = 0
        while True:
            try:
                cells = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.errors.append(RowError(end_of_previous + 1, None, f"malformed CSV: {exc}"))
                end_of_previous = self.reader.line_num
                continue
            line = end_of_previous + 1
            end_of_previous = self.reader.line_num
            if any(cell.strip() for cell in cells):
                yield line, cells

    def _read_header(self, line: int, cells: list[str]) -> list[RowError]:
        self.columns = [cell.strip() for cell in cells]
        errors: list[RowError] = []
        seen: dict[str, str] = {}
        for column in self.columns:
            key = _column_key(column)
            if not key:
                continue
            if key in seen:
                errors.append(RowError(line, column, f"column appears twice (also as {seen[key]!r})"))
            seen[key] = column
        if "phone" in seen and _PHONE_ALIAS in seen:
            errors.append(RowError(line, seen[_PHONE_ALIAS], "give either a 'phone' or a 'number' column, not both"))
        elif "phone" not in seen and _PHONE_ALIAS not in seen:
            errors.append(RowError(line, None, self._no_phone_column(cells)))
        return errors

    @staticmethod
    def _no_phone_column(cells: list[str]) -> str:
        if any(_normalise_phone(cell) is not None for cell in cells):
            return "no header row: this line looks like data; the first line must name the columns, e.g. phone,name"
        found = ", ".join(repr(cell.strip()) for cell in cells)
        return f"no 'phone' (or 'number') column in the header; found {found}"

    def _read_row(self, line: int, cells: list[str]) -> None:
        errors: list[RowError] = []
        known: dict[str, str] = {}
        data: dict[str, str] = {}
        for index, cell in enumerate(cells):
            text = cell.strip()
            column = self.columns[index] if index < len(self.columns) else ""
            if not column:
                if text:
                    errors.append(RowError(line, None, f"a value in column {index + 1}, which has no header: {text!r}"))
                continue
            key = _column_key(column)
            if key == _PHONE_ALIAS:
                key = "phone"
            if key in KNOWN_COLUMNS:
                known[key] = text
            else:
                data[column] = text
        phone_column = self._phone_column()
        phone = self._check_phone(line, phone_column, known.get("phone", ""), errors)
        value = _check_value(line, self._column_named("value"), known.get("value", ""), self.delimiter, errors)
        timezone = _check_timezone(line, self._column_named("timezone"), known.get("timezone", ""), errors)
        self.errors.extend(errors)
        if errors or phone is None:
            return
        if timezone is None and self.numbers.e164:
            zones = time_zones(phone)
            timezone = zones[0] if len(zones) == 1 else None
        self.rows.append(
            LeadRow(
                line=line,
                phone=phone,
                name=known.get("name") or None,
                customer_id=known.get("customer_id") or None,
                tier=known.get("tier", "").lower() or None,
                value=value,
                timezone=timezone,
                data=data,
            )
        )

    def _check_phone(self, line: int, column: str, raw: str, errors: list[RowError]) -> str | None:
        if not raw:
            errors.append(RowError(line, column, "no phone number"))
            return None
        phone = _normalise_phone(raw)
        if phone is None:
            errors.append(
                RowError(
                    line, column,
                    f"not a phone number: {raw!r} (expected {MIN_PHONE_DIGITS}-{MAX_PHONE_DIGITS} digits, "
                    "an optional leading +; spaces, -, . and () are ignored)",
                )
            )
            return None
        if self.numbers.e164:
            try:
                phone = normalise(raw, self.numbers.default_region)
            except NumberError as exc:
                errors.append(RowError(line, column, str(exc)))
                return None
        earlier = self.first_line_of_phone.setdefault(phone, line)
        if earlier != line:
            errors.append(RowError(line, column, f"{phone} is already on line {earlier}"))
        return phone

    def _phone_column(self) -> str:
        return next(c for c in self.columns if _column_key(c) in ("phone", _PHONE_ALIAS))

    def _column_named(self, key: str) -> str:
        return next((c for c in self.columns if _column_key(c) == key), key)


def _check_value(line: int, column: str, raw: str, delimiter: str, errors: list[RowError]) -> Decimal | None:
    if not raw:
        return None
    # Where `;` separates fields (spreadsheets in most of Europe), `,` is the decimal mark.
    if not _DECIMAL.fullmatch(raw) or ("," in raw and delimiter != ";"):
        errors.append(RowError(line, column, f"not a number: {raw!r} (e.g. 1250.50, no thousands separators)"))
        return None
    value = Decimal(raw.replace(",", "."))
    if value < 0:
        errors.append(RowError(line, column, f"must be 0 or more, not {raw}"))
        return None
    return value


def _check_timezone(line: int, column: str, raw: str, errors: list[RowError]) -> str | None:
    if not raw:
        return None
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a region directory such as "America" is not a zone.
        errors.append(RowError(line, column, f"unknown time zone {raw!r} (an IANA name, e.g. America/New_York)"))
        return None
    return raw


def _normalise_phone(raw: str) -> str | None:
    phone = raw.strip().translate({ord(c): None for c in PHONE_SEPARATORS})
    if not _PHONE.fullmatch(phone):
        return None
    digits = len(phone.removeprefix("+"))
    return phone if MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS else None


def _column_key(column: str) -> str:
    return re.sub(r"[\s-]+", "_", column.strip().lower())


def _sniff_delimiter(text: str) -> str:
    """The separator the header line uses most, outside quotes; `,` if it uses none."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    unquoted = "".join(header.split('"')[::2])
    counts = {delimiter: unquoted.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","
