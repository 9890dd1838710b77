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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dialer.core.dialable import DenyList
from dialer.leads.intake import (
    clean_text,
    MAX_PHONE_DIGITS,
    MIN_PHONE_DIGITS,
    PHONE_SEPARATORS,
    LeadIntake,
    LeadRefused,
    LeadRow,
    phone_shape,
)
from dialer.leads.phone_numbers import NumberPolicy

__all__ = ["LeadImport", "LeadRow", "RowError", "parse_leads_csv", "MIN_PHONE_DIGITS", "MAX_PHONE_DIGITS"]

_DELIMITERS = (",", ";", "\t")
KNOWN_COLUMNS = ("phone", "name", "customer_id", "tier", "value", "timezone")
_PHONE_ALIAS = "number"
# Bounds that keep a hostile or broken file from costing unbounded time or memory:
# a field, a physical line and the columns of the header.
MAX_FIELD_CHARS = 10_000
MAX_LINE_CHARS = 100_000
MAX_COLUMNS = 200
MAX_ERRORS = 1000


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
    """The first `MAX_ERRORS` problems, by line."""
    more_errors: int = 0
    """Problems past those, counted but not kept (a file that is not a lead list at all)."""

    @property
    def rejected(self) -> int:
        return len(self.errors) + self.more_errors


def parse_leads_csv(
    source: str | Path, numbers: NumberPolicy | None = None, deny: DenyList | None = None
) -> LeadImport:
    """Parse leads from a file (a `Path`) or from CSV text (a `str`), each row through the intake
    (`dialer.leads.intake`) with `numbers` and `deny` (default: none; a campaign passes its own).

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
    delimiter = _sniff_delimiter(text)
    intake = LeadIntake(
        numbers=numbers or NumberPolicy(e164=False),
        deny=deny if deny is not None else DenyList(()),
        decimal_comma=delimiter == ";",
    )
    with csv_field_limit(MAX_FIELD_CHARS):
        return _Parser(text, delimiter, intake).parse()


class _Errors(list[RowError]):
    """A list that keeps the first MAX_ERRORS errors and counts the rest."""

    more = 0

    def append(self, error: RowError) -> None:
        if len(self) < MAX_ERRORS:
            super().append(error)
        else:
            self.more += 1

    def extend(self, errors: Iterable[RowError]) -> None:
        for error in errors:
            self.append(error)


@contextmanager
def csv_field_limit(chars: int) -> Iterator[None]:
    # The csv module's limit is process-wide: set for the parse, then put back.
    before = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(before)


class _Parser:
    def __init__(self, text: str, delimiter: str, intake: LeadIntake) -> None:
        self.intake = intake
        self.delimiter = delimiter
        self.rows: list[LeadRow] = []
        self.errors = _Errors()
        self.reader = csv.reader(self._lines(text), delimiter=self.delimiter, strict=True)
        self.columns: list[str] = []
        self.keys: list[str] = []
        self.first_line_of_phone: dict[str, int] = {}

    def _lines(self, text: str) -> Iterator[str]:
        """The text's lines for the csv reader; an overlong one is reported and read as empty."""
        for number, line in enumerate(io.StringIO(text, newline=""), 1):
            if len(line) > MAX_LINE_CHARS:
                self.errors.append(RowError(number, None, f"line longer than {MAX_LINE_CHARS} characters; skipped"))
                yield "\n"
            else:
                yield line

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
        return LeadImport(self.rows, list(self.errors), self.errors.more)

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
        if len(cells) > MAX_COLUMNS:
            return [RowError(line, None, f"{len(cells)} columns; at most {MAX_COLUMNS}")]
        self.columns = [clean_text(cell) for cell in cells]
        self.keys = [_column_key(column) for column in self.columns]
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
        if any(phone_shape(cell) is not None for cell in cells):
            return "no header row: this line looks like data; the first line must name the columns, e.g. phone,name"
        found = ", ".join(repr(clean_text(cell)[:40]) for cell in cells[:20])
        return f"no 'phone' (or 'number') column in the header; found {found}"

    def _read_row(self, line: int, cells: list[str]) -> None:
        errors: list[RowError] = []
        known: dict[str, str] = {}
        data: dict[str, str] = {}
        if len(cells) > len(self.columns) and any(cell.strip() for cell in cells[len(self.columns):]):
            index = next(i for i in range(len(self.columns), len(cells)) if cells[i].strip())
            text = clean_text(cells[index])[:40]
            errors.append(RowError(line, None, f"a value in column {index + 1}, which has no header: {text!r}"))
        for index, cell in enumerate(cells[: len(self.columns)]):
            column = self.columns[index]
            if not column:
                if cell.strip():
                    errors.append(
                        RowError(line, None, f"a value in column {index + 1}, which has no header: {clean_text(cell)[:40]!r}")
                    )
                continue
            key = self.keys[index]
            if key == _PHONE_ALIAS:
                key = "phone"
            if key in KNOWN_COLUMNS:
                known[key] = cell
            else:
                data[column] = cell
        try:
            row = self.intake.check(known, data, line=line)
        except LeadRefused as refused:
            errors.extend(RowError(line, self._column_named(p.field), p.message) for p in refused.problems)
            row = None
        if row is not None and not errors:
            earlier = self.first_line_of_phone.setdefault(row.phone, line)
            if earlier != line:
                errors.append(RowError(line, self._column_named("phone"), f"{row.phone} is already on line {earlier}"))
        self.errors.extend(errors)
        if row is not None and not errors:
            self.rows.append(row)

    def _column_named(self, key: str) -> str:
        """The header, as written, of the column a field came from."""
        keys = ("phone", _PHONE_ALIAS) if key == "phone" else (key,)
        return next((c for c, k in zip(self.columns, self.keys) if k in keys), key)


def _column_key(column: str) -> str:
    return re.sub(r"[\s-]+", "_", column.strip().lower())


def _sniff_delimiter(text: str) -> str:
    """The separator the header line uses most, outside quotes; `,` if it uses none."""
    header = next((line for line in io.StringIO(text, newline="") if line.strip()), "")[:MAX_LINE_CHARS]
    unquoted = "".join(header.split('"')[::2])
    counts = {delimiter: unquoted.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","
