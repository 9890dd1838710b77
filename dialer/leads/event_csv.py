"""Parse a CSV file of customer events for revisit campaigns; no database here.

Columns (header names matched ignoring case): `phone`, `event` (one of
`complaint_closed`, `new_customer`, `low_satisfaction`), `date` (ISO 8601:
`2026-11-20` is midnight UTC, or a time with an offset); optional `event_id`
(what makes a re-import harmless; default: event, phone and date), `name`,
`customer_id`, `timezone`. Each row's lead goes through the intake
(`dialer.leads.intake`) like any other lead. A date must lie between 2000-01-01
and `MAX_YEARS_AHEAD` years after today. Every bad row is reported with its line
and field; the command imports nothing when there is one (all or nothing).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from dialer.core.dialable import DenyList
from dialer.leads.csv_import import MAX_COLUMNS, MAX_FIELD_CHARS, RowError, csv_field_limit
from dialer.leads.intake import LeadIntake, LeadRefused, LeadRow, clean_text
from dialer.leads.phone_numbers import NumberPolicy

EVENT_KINDS = ("complaint_closed", "new_customer", "low_satisfaction")
REQUIRED = ("phone", "event", "date")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_YEARS_AHEAD = 3
MAX_EVENT_ID_CHARS = 100


@dataclass(frozen=True)
class EventRow:
    line: int
    key: str
    kind: str
    occurred_at: datetime
    lead: LeadRow


def parse_events_csv(
    path: Path, numbers: NumberPolicy, *, today: date, deny: DenyList | None = None
) -> tuple[list[EventRow], list[RowError]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [RowError(1, None, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV")]
    intake = LeadIntake(numbers=numbers, deny=deny if deny is not None else DenyList(()))
    latest = datetime(min(today.year + MAX_YEARS_AHEAD, 9998), today.month, min(today.day, 28), tzinfo=UTC)
    rows: list[EventRow] = []
    errors: list[RowError] = []
    header: list[str] | None = None
    with csv_field_limit(MAX_FIELD_CHARS):
        reader = csv.reader(io.StringIO(text, newline=""))
        line = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                errors.append(RowError(line + 1, None, f"malformed CSV: {exc}"))
                line = reader.line_num
                continue
            first, line = line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                if len(cells) > MAX_COLUMNS:
                    return [], [RowError(first, None, f"{len(cells)} columns; at most {MAX_COLUMNS}")]
                header = [clean_text(c).lower().replace(" ", "_") for c in cells]
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    return [], [RowError(first, None, f"missing column(s): {', '.join(missing)}")]
                continue
            values = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
            row = _row(first, values, intake, (EARLIEST, latest), errors)
            if row is not None:
                rows.append(row)
    if header is None:
        errors.append(RowError(1, None, "the file is empty; expected a header row: phone,event,date"))
    return rows, errors


def _row(
    line: int,
    values: dict[str, str],
    intake: LeadIntake,
    dates: tuple[datetime, datetime],
    errors: list[RowError],
) -> EventRow | None:
    problems: list[RowError] = []
    kind = clean_text(values["event"]).lower()
    if kind not in EVENT_KINDS:
        shown = clean_text(values["event"])[:40]
        problems.append(RowError(line, "event", f"unknown event {shown!r} (one of {', '.join(EVENT_KINDS)})"))
    occurred = _date(line, clean_text(values["date"]), dates, problems)
    try:
        lead = intake.check(
            {key: values.get(key) for key in ("phone", "name", "customer_id", "timezone")},
            {"revisit_event": kind, "event_date": occurred.date().isoformat() if occurred else ""},
            line=line,
        )
    except LeadRefused as refused:
        problems.extend(RowError(line, p.field, p.message) for p in refused.problems)
        lead = None
    event_id = clean_text(values.get("event_id") or "")
    if len(event_id) > MAX_EVENT_ID_CHARS:
        problems.append(RowError(line, "event_id", f"longer than {MAX_EVENT_ID_CHARS} characters"))
    errors.extend(problems)
    if problems or lead is None or occurred is None:
        return None
    key = event_id or f"{kind}:{lead.phone}:{occurred.isoformat()}"
    return EventRow(line, key, kind, occurred, lead)


def _date(line: int, raw: str, dates: tuple[datetime, datetime], problems: list[RowError]) -> datetime | None:
    try:
        occurred = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(RowError(line, "date", f"not a date: {raw[:40]!r} (e.g. 2026-11-20)"))
        return None
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    earliest, latest = dates
    # Compared by calendar date: a UTC offset on 9999-12-31 must not overflow.
    if not earliest.date() <= occurred.date() <= latest.date():
        problems.append(
            RowError(
                line,
                "date",
                f"{raw[:40]!r} is out of range: events from {earliest.date()} to {latest.date()} "
                f"({MAX_YEARS_AHEAD} years ahead)",
            )
        )
        return None
    return occurred
