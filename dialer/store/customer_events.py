"""Customer events (complaint closed, new customer, low satisfaction) that schedule revisit calls.

Each event puts its customer's lead in a revisit campaign, due N days after
the event. An event is recorded once (by its key): importing the same file
twice schedules nothing twice. A file's events are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dialer.core.lead_lifecycle import IllegalTransition, Revisited
from dialer.leads.event_csv import EventRow
from dialer.store import lead_transitions
from dialer.store.schema import customer_events, leads
from dialer.store.store import Store, _naive_utc, insert_lead_batch

# Rows per bulk statement (SQLite takes at most 32 766 parameters in one).
_CHUNK = 2000


@dataclass(frozen=True)
class RevisitSummary:
    scheduled: int
    already_imported: int
    busy: int
    """Leads being called right now: their revisit is recorded, the lead is left alone."""


async def schedule_revisits(
    store: Store, plan: Sequence[tuple[int, Sequence[EventRow], Mapping[str, int]]], now: datetime
) -> list[RevisitSummary]:
    """For each (campaign id, its events, days after each kind): schedule the revisits, all in
    one transaction, so a file is imported whole or not at all."""
    async with store._write() as conn:
        return [await _schedule(conn, campaign_id, events, days, now) for campaign_id, events, days in plan]


async def _schedule(
    conn: AsyncConnection, campaign_id: int, events: Sequence[EventRow], days: Mapping[str, int], now: datetime
) -> RevisitSummary:
    scheduled = seen = busy = 0
    known: set[str] = set()
    keys = [e.key for e in events]
    for start in range(0, len(keys), _CHUNK):
        found = await conn.execute(
            select(customer_events.c.event_key).where(customer_events.c.event_key.in_(keys[start : start + _CHUNK]))
        )
        known.update(found.scalars())
    fresh: list[EventRow] = []
    for event in events:
        if event.key in known:
            seen += 1
        else:
            fresh.append(event)
            known.add(event.key)
    if not fresh:
        return RevisitSummary(0, seen, 0)
    # Customers and leads are created the way a lead import creates them.
    for start in range(0, len(fresh), _CHUNK):
        await insert_lead_batch(conn, campaign_id, [e.lead for e in fresh[start : start + _CHUNK]], _naive_utc(now))
    for event in fresh:
        due = _naive_utc(event.occurred_at + timedelta(days=days[event.kind]))
        lead = (
            await conn.execute(
                select(leads.c.id, *lead_transitions.LIFECYCLE_COLUMNS).where(
                    leads.c.campaign_id == campaign_id, leads.c.phone == event.lead.phone
                )
            )
        ).first()
        if lead is None:
            continue  # the customer exists under another number's lead: the import kept the first
        try:
            await lead_transitions.apply(
                conn, lead.id, Revisited(due), now, lead=lead_transitions.lead_from_row(lead)
            )
            scheduled += 1
        except IllegalTransition:
            busy += 1  # being called now: its attempt's end decides the lead
        await conn.execute(
            insert(customer_events).values(
                event_key=event.key,
                kind=event.kind,
                phone=event.lead.phone,
                occurred_at=_naive_utc(event.occurred_at),
                campaign_id=campaign_id,
                lead_id=lead.id,
                imported_at=_naive_utc(now),
            )
        )
    return RevisitSummary(scheduled, seen, busy)
