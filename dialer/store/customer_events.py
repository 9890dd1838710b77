"""Customer events (complaint closed, new customer, low satisfaction) that schedule revisit calls.

Each event puts its customer's lead in a revisit campaign, due N days after
the event. An event is recorded once (by its key): importing the same file
twice schedules nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from dialer.leads.event_csv import EventRow
from dialer.store.schema import customer_events, leads
from dialer.store.store import Store, _naive_utc


@dataclass(frozen=True)
class RevisitSummary:
    scheduled: int
    already_imported: int
    busy: int
    """Leads being called right now: their revisit is recorded, the lead is left alone."""


async def schedule_revisits(
    store: Store, campaign_id: int, events: list[EventRow], days: dict[str, int], now: datetime
) -> RevisitSummary:
    scheduled = seen = busy = 0
    fresh: list[EventRow] = []
    async with store._read() as conn:
        known = set(
            (
                await conn.execute(
                    select(customer_events.c.event_key).where(customer_events.c.event_key.in_([e.key for e in events]))
                )
            )
            .scalars()
            .all()
        )
    for event in events:
        if event.key in known:
            seen += 1
        else:
            fresh.append(event)
            known.add(event.key)
    if not fresh:
        return RevisitSummary(0, seen, 0)
    # Customers and leads are created the way a lead import creates them.
    await store.import_leads(campaign_id, [e.lead for e in fresh])
    async with store._write() as conn:
        for event in fresh:
            due = _naive_utc(event.occurred_at + timedelta(days=days[event.kind]))
            lead = (
                await conn.execute(
                    select(leads.c.id, leads.c.state).where(
                        leads.c.campaign_id == campaign_id, leads.c.phone == event.lead.phone
                    )
                )
            ).first()
            if lead is None:
                continue  # the customer exists under another number's lead: import_leads kept the first
            if lead.state == "leased":
                busy += 1
            else:
                await conn.execute(
                    update(leads)
                    .where(leads.c.id == lead.id)
                    .values(
                        state="pending",
                        next_attempt_at=due,
                        attempts=0,
                        final_outcome=None,
                        final_reason=None,
                        callback_id=None,
                    )
                )
                scheduled += 1
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
