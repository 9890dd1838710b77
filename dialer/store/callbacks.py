"""Scheduled callbacks: a call a customer asked for, at a time, maybe to one agent.

A scheduled callback makes its lead pending again, due at the chosen time
with the callback priority, so the runner leases it before any other lead
as soon as it is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dialer.core.lead_lifecycle import CallbackBooked, IllegalTransition, held_by_another
from dialer.store import lead_transitions
from dialer.store.schema import callbacks, campaigns
from dialer.store.store import Store, _naive_utc

OPEN_STATES = ("scheduled",)


@dataclass(frozen=True)
class Callback:
    id: int
    campaign: str
    lead_id: int
    phone: str
    agent_id: str | None
    due_at: datetime
    state: str
    attempt_id: str | None


async def schedule(
    conn: AsyncConnection,
    *,
    lead_id: int,
    campaign_id: int,
    phone: str,
    due_at: datetime,
    agent_id: str | None,
    requested_by: str | None,
    now: datetime,
) -> int:
    """Within a caller's transaction: record the callback and make its lead due then.

    The lead's attempt count restarts: a callback is a new conversation with
    its own retries. The callback the lead was due for, if any, is fulfilled
    by `requested_by`; any other still open is replaced. Raises
    IllegalTransition when another attempt is calling the lead.
    """
    lead = await lead_transitions.read(conn, lead_id)
    if lead is None:
        raise LookupError(f"no lead {lead_id}")
    if held_by_another(lead, requested_by):
        # Before the callback row: the caller's transaction is left as it was.
        raise IllegalTransition(f"lead {lead_id} is being called (attempt {lead.lease_attempt_id})")
    result = await conn.execute(
        insert(callbacks).values(
            lead_id=lead_id,
            campaign_id=campaign_id,
            phone=phone,
            agent_id=agent_id,
            due_at=_naive_utc(due_at),
            state="scheduled",
            requested_by_attempt=requested_by,
            created_at=_naive_utc(now),
        )
    )
    callback_id = result.inserted_primary_key[0]
    event = CallbackBooked(callback_id, due_at, attempt_id=requested_by)
    try:
        await lead_transitions.apply(conn, lead_id, event, now, lead=lead)
    except lead_transitions.StaleLead:
        # The caller may go on with its transaction: no callback without its lead.
        await conn.execute(delete(callbacks).where(callbacks.c.id == callback_id))
        raise
    await conn.execute(
        update(callbacks)
        .where(callbacks.c.lead_id == lead_id, callbacks.c.state.in_(OPEN_STATES), callbacks.c.id != callback_id)
        .values(state="replaced", done_at=_naive_utc(now))
    )
    return callback_id


async def get(store: Store, callback_ids: list[int]) -> dict[int, Callback]:
    if not callback_ids:
        return {}
    return {c.id: c for c in await _select(store, callbacks.c.id.in_(callback_ids))}


async def list_callbacks(store: Store, *, campaign: str | None = None, include_closed: bool = False) -> list[Callback]:
    condition: ColumnElement[bool] = true() if include_closed else callbacks.c.state.in_(OPEN_STATES)
    if campaign is not None:
        condition = (campaigns.c.name == campaign) & condition
    return await _select(store, condition)


async def _select(store: Store, condition: ColumnElement[bool]) -> list[Callback]:
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(
                    callbacks.c.id,
                    campaigns.c.name,
                    callbacks.c.lead_id,
                    callbacks.c.phone,
                    callbacks.c.agent_id,
                    callbacks.c.due_at,
                    callbacks.c.state,
                    callbacks.c.attempt_id,
                )
                .join(campaigns, campaigns.c.id == callbacks.c.campaign_id)
                .where(condition)
                .order_by(callbacks.c.due_at, callbacks.c.id)
            )
        ).all()
    return [Callback(*row) for row in rows]
