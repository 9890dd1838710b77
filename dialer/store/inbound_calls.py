"""Inbound calls in the database: who called back, what it answers, how it ended.

An inbound call that reaches an agent is a contact: its lead is done (no
further outbound attempt; a disposition may still ask for one) and any callback
still scheduled for it is done too, in the same transaction. A caller who asks
for a callback by keypress gets one scheduled like any other
(`dialer.store.callbacks.schedule`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from dialer.core.lead_lifecycle import CalledBack, IllegalTransition
from dialer.core.outcomes import REACHED
from dialer.store import callbacks as callback_store
from dialer.store import dialect, lead_transitions
from dialer.store.schema import call_attempts, callbacks, campaigns, customers, inbound_calls, leads
from dialer.store.store import Store, _naive_utc

CALLED_BACK = "inbound_callback"
"""final_reason of a lead closed because the customer called in and reached an agent."""


@dataclass(frozen=True)
class KnownCaller:
    customer_id: int
    external_id: str | None
    name: str | None
    tier: str | None
    value: float | None
    campaign_id: int | None
    """The campaign (of those answering on the number) whose lead this caller is; None: none of them."""
    lead_id: int | None
    answers_attempt: str | None
    """The lead's last attempt, when it did not reach the customer (abandoned, no answer, busy...)."""
    answers_outcome: str | None


async def recognise(store: Store, forms: Sequence[str], campaign_ids: Sequence[int]) -> KnownCaller | None:
    """The customer whose number is one of `forms`, with their lead in one of `campaign_ids`.

    With leads in several of those campaigns, the one dialed last wins: that is
    the call the customer is most likely returning.
    """
    if not forms:
        return None
    async with store._read() as conn:
        customer = (
            await conn.execute(
                select(customers.c.id, customers.c.external_id, customers.c.name, customers.c.tier, customers.c.value)
                .where(customers.c.phone.in_(list(forms)))
                .order_by(customers.c.id)
                .limit(1)
            )
        ).first()
        if customer is None:
            return None
        lead_id = campaign_id = answers = answers_outcome = None
        if campaign_ids:
            last = (
                await conn.execute(
                    select(leads.c.id, leads.c.campaign_id, call_attempts.c.id, call_attempts.c.outcome)
                    .select_from(leads.outerjoin(call_attempts, call_attempts.c.lead_id == leads.c.id))
                    .where(leads.c.customer_id == customer.id, leads.c.campaign_id.in_(list(campaign_ids)))
                    .order_by(call_attempts.c.dialed_at.desc().nulls_last(), leads.c.id)
                    .limit(1)
                )
            ).first()
            if last is not None:
                lead_id, campaign_id, attempt_id, outcome = last
                if attempt_id is not None and outcome is not None and outcome not in REACHED:
                    answers, answers_outcome = attempt_id, outcome
    return KnownCaller(
        customer.id, customer.external_id, customer.name, customer.tier, customer.value,
        campaign_id, lead_id, answers, answers_outcome,
    )


async def open_call(store: Store, **values: Any) -> None:
    async with store._write() as conn:
        await conn.execute(
            insert(inbound_calls).values(
                **dialect.fit(inbound_calls, {k: _naive_utc(v) if isinstance(v, datetime) else v for k, v in values.items()})
            )
        )


async def bridged(store: Store, call_id: str, agent_id: str, at: datetime) -> int | None:
    """The call reached `agent_id`: record it and close its lead as contacted. Returns the lead closed."""
    async with store._write() as conn:
        row = (
            await conn.execute(select(inbound_calls.c.lead_id, inbound_calls.c.bridged_at).where(inbound_calls.c.id == call_id))
        ).first()
        if row is None or row.bridged_at is not None:
            return None
        await conn.execute(
            update(inbound_calls).where(inbound_calls.c.id == call_id).values(agent_id=agent_id, bridged_at=_naive_utc(at))
        )
        if row.lead_id is None:
            return None
        # A lead already done (do-not-call, a final disposition) keeps its reason.
        try:
            await lead_transitions.apply(conn, row.lead_id, CalledBack(CALLED_BACK), at)
            closed = True
        except IllegalTransition:
            closed = False
        await conn.execute(
            update(callbacks)
            .where(callbacks.c.lead_id == row.lead_id, callbacks.c.state.in_(callback_store.OPEN_STATES))
            .values(state="done", done_at=_naive_utc(at))
        )
        return row.lead_id if closed else None


async def ended(store: Store, call_id: str, outcome: str, at: datetime) -> None:
    """The call is over: `outcome` unless an agent took it (answered) or a callback was booked."""
    async with store._write() as conn:
        row = (
            await conn.execute(
                select(inbound_calls.c.bridged_at, inbound_calls.c.outcome).where(inbound_calls.c.id == call_id)
            )
        ).first()
        if row is None:
            return
        final = "answered" if row.bridged_at is not None else (row.outcome or outcome)
        await conn.execute(
            update(inbound_calls)
            .where(inbound_calls.c.id == call_id, inbound_calls.c.ended_at.is_(None))
            .values(outcome=final, ended_at=_naive_utc(at))
        )


async def set_outcome(store: Store, call_id: str, outcome: str) -> None:
    """What the dialplan reported before the end (no_agent), unless an agent already took the call."""
    async with store._write() as conn:
        await conn.execute(
            update(inbound_calls)
            .where(inbound_calls.c.id == call_id, inbound_calls.c.bridged_at.is_(None), inbound_calls.c.outcome.is_(None))
            .values(outcome=outcome)
        )


async def request_callback(store: Store, call_id: str, due_at: datetime, now: datetime) -> int | None:
    """The caller pressed the callback key: schedule it for their lead. None: no lead to call back."""
    async with store._write() as conn:
        row = (
            await conn.execute(
                select(inbound_calls.c.lead_id, inbound_calls.c.campaign_id, leads.c.phone, inbound_calls.c.callback_id)
                .select_from(inbound_calls.join(leads, leads.c.id == inbound_calls.c.lead_id))
                .where(inbound_calls.c.id == call_id)
            )
        ).first()
        if row is None:
            return None
        if row.callback_id is not None:
            return int(row.callback_id)  # the key pressed twice, or the route asked again
        try:
            callback_id = await callback_store.schedule(
                conn,
                lead_id=row.lead_id,
                campaign_id=row.campaign_id,
                phone=row.phone,
                due_at=due_at,
                agent_id=None,
                requested_by=None,
                now=now,
            )
        except IllegalTransition:
            return None  # an outbound attempt is calling this lead right now: its end decides the lead
        await conn.execute(
            update(inbound_calls)
            .where(inbound_calls.c.id == call_id)
            .values(callback_id=callback_id, outcome="callback_requested")
        )
        return int(callback_id)


async def open_calls(store: Store) -> list[dict[str, Any]]:
    """Rows of calls not ended: what a previous run (or a lost AMI link) left to follow."""
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(inbound_calls, campaigns.c.name.label("campaign"))
                .join(campaigns, campaigns.c.id == inbound_calls.c.campaign_id)
                .where(inbound_calls.c.ended_at.is_(None))
            )
        ).mappings().all()
    return [dict(r) for r in rows]


async def calls(store: Store, campaign_id: int) -> list[dict[str, Any]]:
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(inbound_calls).where(inbound_calls.c.campaign_id == campaign_id).order_by(inbound_calls.c.started_at)
            )
        ).mappings().all()
    return [dict(r) for r in rows]


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report's inbound section: per tier, calls, how they were routed and how they ended."""
    by_tier: dict[str, dict[str, Any]] = {}
    for row in rows:
        tier = row["tier"] or ("unknown" if row["customer_id"] is None else "untiered")
        entry = by_tier.setdefault(
            tier, {"calls": 0, "answered": 0, "outcomes": Counter(), "routing": Counter(), "abandons_closed": 0}
        )
        entry["calls"] += 1
        entry["outcomes"][row["outcome"] or "open"] += 1
        entry["routing"][row["routing"]] += 1
        if row["bridged_at"] is not None:
            entry["answered"] += 1
            if row["answers_outcome"] == "abandoned":
                entry["abandons_closed"] += 1
    for entry in by_tier.values():
        entry["outcomes"] = dict(entry["outcomes"])
        entry["routing"] = dict(entry["routing"])
    answered_abandons = {r["answers_attempt"] for r in rows if r["bridged_at"] is not None and r["answers_outcome"] == "abandoned"}
    return {
        "calls": len(rows),
        "answered": sum(1 for r in rows if r["bridged_at"] is not None),
        "unknown_callers": sum(1 for r in rows if r["customer_id"] is None),
        "callbacks_requested": sum(1 for r in rows if r["callback_id"] is not None),
        "abandons_closed": len(answered_abandons),
        "by_tier": by_tier,
    }
