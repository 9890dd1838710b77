"""Parse a CSV file of customer events for revisit campaigns; no database here.

Columns (header names matched ignoring case): `phone`, `event` (one of
`complaint_closed`, `new_customer`, `low_satisfaction`), `date` (ISO 8601:
`2026-11-20` is midnight UTC, or a time with an offset); optional `event_id`
(what makes a re-import harmless; default: event, phone and date), `name`,
`customer_id`, `timezone`. A bad row is reported with its line and skipped.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.leads.csv_import import LeadRow, RowError
from dialer.leads.phone_numbers import NumberError, NumberPolicy, normalise, time_zones

EVENT_KINDS = ("complaint_closed", "new_customer", "low_satisfaction")
REQUIRED = ("phone", "event", "date")


@dataclass(frozen=True)
class EventRow:
    line: int
    key: str
    kind: str
    occurred_at: datetime
    lead: LeadRow


def parse_events_csv(path: Path, numbers: NumberPolicy) -> tuple[list[EventRow], list[RowError]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [RowError(1, None, "not UTF-8 text; save the file as UTF-8 CSV")]
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[EventRow] = []
    errors: list[RowError] = []
    header: list[str] | None = None
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower().replace(" ", "_") for c in cells]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                return [], [RowError(line, None, f"missing column(s): {', '.join(missing)}")]
            continue
        values = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        row = _row(line, values, numbers, errors)
        if row is not None:
            rows.append(row)
    if header is None:
        errors.append(RowError(1, None, "the file is empty; expected a header row: phone,event,date"))
    return rows, errors


def _row(line: int, values: dict[str, str], numbers: NumberPolicy, errors: list[RowError]) -> EventRow | None:
    kind = values["event"].lower()
    if kind not in EVENT_KINDS:
        errors.append(RowError(line, "event", f"unknown event {values['event']!r} (one of {', '.join(EVENT_KINDS)})"))
        return None
    phone = values["phone"]
    if numbers.e164:
        try:
            phone = normalise(phone, numbers.default_region)
        except NumberError as exc:
            errors.append(RowError(line, "phone", str(exc)))
            return None
    elif not phone.lstrip("+").isdigit():
        errors.append(RowError(line, "phone", f"not a phone number: {phone!r}"))
        return None
    try:
        occurred = datetime.fromisoformat(values["date"])
    except ValueError:
        errors.append(RowError(line, "date", f"not a date: {values['date']!r} (e.g. 2026-11-20)"))
        return None
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    zone = values.get("timezone") or None
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            errors.append(RowError(line, "timezone", f"unknown time zone {zone!r}"))
            return None
    elif numbers.e164 and len(zones := time_zones(phone)) == 1:
        zone = zones[0]
    key = values.get("event_id") or f"{kind}:{phone}:{occurred.isoformat()}"
    lead = LeadRow(
        line=line,
        phone=phone,
        name=values.get("name") or None,
        customer_id=values.get("customer_id") or None,
        timezone=zone,
        data={"revisit_event": kind, "event_date": occurred.date().isoformat()},
    )
    return EventRow(line, key, kind, occurred, lead)
