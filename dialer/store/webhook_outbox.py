"""The webhook outbox: deliveries written with their disposition, read and updated by the dispatcher.

`enqueue` runs inside the disposition's own transaction (dialer.dispositions): the
disposition and its deliveries are committed together or not at all, so a crash can
lose neither one without the other. Everything else opens its own connection on the
Store's engine; errors leave as `StoreError`, like the Store's own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dialer.config.webhooks import WebhookConfig
from dialer.core.webhook_delivery import OutboxState, Transition
from dialer.core.webhook_delivery import requeue as requeued
from dialer.store.schema import (
    call_attempts,
    campaigns,
    customers,
    leads,
    survey_answers,
    survey_results,
    webhook_outbox,
)
from dialer.store.store import Store, _naive_utc

MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: str
    campaign: str
    attempt_id: str
    webhook: str
    url: str
    secret_source: str
    body: bytes
    state: OutboxState
    tries: int
    failed_tries: int
    next_try_at: datetime | None
    created_at: datetime
    last_try_at: datetime | None
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds") + "Z"


async def _payload(
    conn: AsyncConnection, *, event_id: str, attempt_id: str, code: str, action: str, agent: str | None,
    notes: str | None, callback_at: datetime | None, now: datetime,
) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(
                campaigns.c.name.label("campaign"),
                call_attempts.c.attempt_no,
                call_attempts.c.phone,
                call_attempts.c.outcome,
                call_attempts.c.dialed_at,
                call_attempts.c.agent_id,
                call_attempts.c.tier.label("attempt_tier"),
                customers.c.external_id,
                customers.c.name,
                customers.c.phone.label("customer_phone"),
                customers.c.tier.label("customer_tier"),
            )
            .join(campaigns, campaigns.c.id == call_attempts.c.campaign_id)
            .join(leads, leads.c.id == call_attempts.c.lead_id)
            .join(customers, customers.c.id == leads.c.customer_id)
            .where(call_attempts.c.id == attempt_id)
        )
    ).one()
    survey = (
        await conn.execute(
            select(survey_results.c.flow, survey_results.c.status).where(survey_results.c.attempt_id == attempt_id)
        )
    ).first()
    answers = (
        await conn.execute(
            select(survey_answers.c.question, survey_answers.c.value, survey_answers.c.status)
            .where(survey_answers.c.attempt_id == attempt_id)
            .order_by(survey_answers.c.seq)
        )
    ).all()
    return {
        "event_id": event_id,
        "event": "disposition",
        "occurred_at": _iso(_naive_utc(now)),
        "campaign": row.campaign,
        "customer": {"id": row.external_id, "name": row.name, "phone": row.customer_phone},
        "tier": row.attempt_tier or row.customer_tier,
        "attempt": {
            "id": attempt_id,
            "number": row.attempt_no,
            "phone": row.phone,
            "outcome": row.outcome,
            "dialed_at": _iso(row.dialed_at),
        },
        "disposition": {
            "code": code,
            "action": action,
            "callback_at": _iso(_naive_utc(callback_at)) if callback_at is not None else None,
        },
        "agent": agent or row.agent_id,
        "notes": notes,
        "survey": None
        if survey is None and not answers
        else {
            "flow": survey.flow if survey else None,
            "status": survey.status if survey else None,
            "answers": [{"question": a.question, "value": a.value, "status": a.status} for a in answers],
        },
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes signed and sent on every try (compact, UTF-8, keys in the order built)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def enqueue(
    conn: AsyncConnection,
    webhooks: Sequence[WebhookConfig],
    *,
    campaign_id: int,
    attempt_id: str,
    code: str,
    action: str,
    agent: str | None,
    notes: str | None,
    callback_at: datetime | None,
    now: datetime,
) -> str | None:
    """Within the disposition's transaction: one pending delivery per webhook that wants `code`.

    Returns the event id (one per disposition, shared by its endpoints), None when no webhook wants it.
    """
    wanted = [hook for hook in webhooks if hook.wants(code)]
    if not wanted:
        return None
    event_id = uuid.uuid4().hex
    body = encode_body(
        await _payload(
            conn, event_id=event_id, attempt_id=attempt_id, code=code, action=action, agent=agent, notes=notes,
            callback_at=callback_at, now=now,
        )
    ).decode()
    when = _naive_utc(now)
    await conn.execute(
        insert(webhook_outbox),
        [
            {
                "event_id": event_id,
                "campaign_id": campaign_id,
                "attempt_id": attempt_id,
                "webhook": hook.name,
                "url": hook.url,
                "secret_source": hook.secret_source(),
                "body": body,
                "state": OutboxState.pending.value,
                "tries": 0,
                "failed_tries": 0,
                "next_try_at": when,
                "created_at": when,
            }
            for hook in wanted
        ],
    )
    return event_id


def _select() -> Any:
    return select(webhook_outbox, campaigns.c.name.label("campaign_name")).join(
        campaigns, campaigns.c.id == webhook_outbox.c.campaign_id
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        campaign=row.campaign_name,
        attempt_id=row.attempt_id,
        webhook=row.webhook,
        url=row.url,
        secret_source=row.secret_source,
        body=row.body.encode(),
        state=OutboxState(row.state),
        tries=row.tries,
        failed_tries=row.failed_tries,
        next_try_at=row.next_try_at,
        created_at=row.created_at,
        last_try_at=row.last_try_at,
        delivered_at=row.delivered_at,
        last_status=row.last_status,
        last_error=row.last_error,
    )


async def due(store: Store, now: datetime, limit: int, skip: Sequence[int] = ()) -> list[Delivery]:
    """Pending deliveries due at `now`, oldest due first, leaving out `skip` (in flight)."""
    query = (
        _select()
        .where(webhook_outbox.c.state == OutboxState.pending.value, webhook_outbox.c.next_try_at <= _naive_utc(now))
        .order_by(webhook_outbox.c.next_try_at, webhook_outbox.c.id)
        .limit(limit)
    )
    if skip:
        query = query.where(webhook_outbox.c.id.not_in(list(skip)))
    async with store._read() as conn:
        return [_delivery(row) for row in (await conn.execute(query)).all()]


async def record_try(
    store: Store, delivery_id: int, transition: Transition, *, status: int | None, error: str | None, now: datetime
) -> bool:
    """Write one try's result; False when the row was no longer pending (changed meanwhile)."""
    failed = transition.state is not OutboxState.delivered
    values: dict[str, Any] = {
        "state": transition.state.value,
        "tries": transition.tries,
        "failed_tries": webhook_outbox.c.failed_tries + (1 if failed else 0),
        "next_try_at": _naive_utc(transition.next_try_at) if transition.next_try_at else None,
        "last_try_at": _naive_utc(now),
        "last_status": status,
        # From a receiver's answer at times (a Location, a protocol error): shown on terminals.
        "last_error": "".join(c if c.isprintable() else "?" for c in error[:MAX_ERROR_CHARS]) if error else None,
    }
    if not failed:
        values["delivered_at"] = _naive_utc(now)
    async with store._write() as conn:
        result = await conn.execute(
            update(webhook_outbox)
            .where(webhook_outbox.c.id == delivery_id, webhook_outbox.c.state == OutboxState.pending.value)
            .values(**values)
        )
    return result.rowcount == 1


async def list_deliveries(
    store: Store, *, campaign: str | None = None, state: OutboxState | None = None, limit: int = 1000
) -> list[Delivery]:
    """Newest first."""
    query = _select().order_by(webhook_outbox.c.id.desc()).limit(limit)
    if campaign is not None:
        query = query.where(campaigns.c.name == campaign)
    if state is not None:
        query = query.where(webhook_outbox.c.state == state.value)
    async with store._read() as conn:
        return [_delivery(row) for row in (await conn.execute(query)).all()]


async def requeue(store: Store, now: datetime, *, ids: Sequence[int] = (), campaign: str | None = None) -> int:
    """Dead deliveries (these `ids`, or all of `campaign`'s, or all) pending again, due now,
    tries counted afresh (dialer.core.webhook_delivery.requeue). Returns how many."""
    query = update(webhook_outbox).where(webhook_outbox.c.state == OutboxState.dead.value)
    if ids:
        query = query.where(webhook_outbox.c.id.in_(list(ids)))
    if campaign is not None:
        query = query.where(
            webhook_outbox.c.campaign_id == select(campaigns.c.id).where(campaigns.c.name == campaign).scalar_subquery()
        )
    again = requeued(OutboxState.dead, now)
    assert again.next_try_at is not None
    async with store._write() as conn:
        result = await conn.execute(
            query.values(state=again.state.value, tries=again.tries, next_try_at=_naive_utc(again.next_try_at))
        )
    return result.rowcount


async def summary(store: Store, campaign_id: int | None = None) -> list[dict[str, Any]]:
    """Per campaign and webhook: delivered, pending, dead, failed tries (every failed try,
    those before a requeue too) and the newest error of a delivery not yet delivered."""
    is_state = {s: func.sum(case((webhook_outbox.c.state == s.value, 1), else_=0)) for s in OutboxState}
    query = (
        select(
            campaigns.c.name.label("campaign"),
            webhook_outbox.c.webhook,
            *(is_state[s].label(s.value) for s in OutboxState),
            func.sum(webhook_outbox.c.failed_tries).label("failed_tries"),
        )
        .join(campaigns, campaigns.c.id == webhook_outbox.c.campaign_id)
        .group_by(campaigns.c.name, webhook_outbox.c.webhook)
        .order_by(campaigns.c.name, webhook_outbox.c.webhook)
    )
    last_error = (
        select(webhook_outbox.c.webhook, webhook_outbox.c.last_error, campaigns.c.name.label("campaign"))
        .join(campaigns, campaigns.c.id == webhook_outbox.c.campaign_id)
        .where(webhook_outbox.c.last_error.is_not(None), webhook_outbox.c.state != OutboxState.delivered.value)
        .order_by(webhook_outbox.c.last_try_at.desc())
    )
    if campaign_id is not None:
        query = query.where(webhook_outbox.c.campaign_id == campaign_id)
        last_error = last_error.where(webhook_outbox.c.campaign_id == campaign_id)
    async with store._read() as conn:
        rows = (await conn.execute(query)).all()
        errors: dict[tuple[str, str], str] = {}
        for row in (await conn.execute(last_error.limit(500))).all():
            errors.setdefault((row.campaign, row.webhook), row.last_error)
    return [
        {
            "campaign": row.campaign,
            "webhook": row.webhook,
            "delivered": int(row.delivered or 0),
            "pending": int(row.pending or 0),
            "dead": int(row.dead or 0),
            "failed_tries": int(row.failed_tries or 0),
            "last_error": errors.get((row.campaign, row.webhook)),
        }
        for row in rows
    ]
