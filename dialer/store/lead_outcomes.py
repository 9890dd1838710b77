"""Store writes that decide a lead's fate: after an attempt, when a lease is given back
unsent, and the attempts a crash or a disconnect left open.

The decisions are the pure core's (`dialer.core.retry`); these functions only
read what it needs and write its answer, each in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from dialer.core.faults import after_fault, is_fault
from dialer.core.lead_lifecycle import AttemptEnded, NotSent, Released
from dialer.core.retry import Close, Retry, RetryRule, after_attempt
from dialer.store import dialect, lead_transitions
from dialer.store.schema import call_attempts
from dialer.store.store import Store, _naive_utc, utcnow


@dataclass(frozen=True)
class OpenAttempt:
    """An attempt row not yet ended: what reconciliation knows of it."""

    id: str
    campaign_id: int
    lead_id: int
    phone: str
    state: str
    dialed_at: datetime
    answered_at: datetime | None
    bridged_at: datetime | None
    agent_id: str | None
    server: str | None = None
    """The AMI server that carries it; None: the first (or the only) one."""


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    return dialect.fit(call_attempts, {k: _naive_utc(v) if isinstance(v, datetime) else v for k, v in values.items()})


async def finish_with_rules(
    store: Store,
    attempt_id: str,
    *,
    outcome: str,
    now: datetime,
    rules: Mapping[str, RetryRule],
    **columns: Any,
) -> Retry | Close | None:
    """Write an attempt's final row and its lead's next step per `rules`, in one transaction.

    Returns the step taken, or None when the attempt was already ended or its
    lead no longer leased by it (a disposition already decided its fate).
    An attempt ended by a fault (`interrupted`, or `cut_short=True` among the
    columns) gives its lead's attempt back and follows `dialer.core.faults`.
    """
    async with store._write() as conn:
        # A final row is written once: a second writer (reconciliation racing the
        # runner's own settle) changes nothing.
        ended = await conn.execute(
            update(call_attempts)
            .where(call_attempts.c.id == attempt_id, call_attempts.c.state != "ended")
            .values(state="ended", outcome=outcome, **_columns(columns))
        )
        if ended.rowcount != 1:
            return None
        held = await lead_transitions.leased_by(conn, attempt_id)
        if held is None:
            return None
        lead_id, lead = held
        fault = is_fault(outcome, bool(columns.get("cut_short")))
        if fault:
            faults = (
                await conn.execute(
                    select(func.count())
                    .select_from(call_attempts)
                    .where(
                        call_attempts.c.lead_id == lead_id,
                        or_(call_attempts.c.outcome == "interrupted", call_attempts.c.cut_short.is_(True)),
                    )
                )
            ).scalar_one()
            step: Retry | Close = after_fault(faults, now, rules)
        else:
            step = after_attempt(outcome, lead.attempts, now, rules)
        # A fault gives back the attempt the lease counted: the customer never said no.
        try:
            await lead_transitions.apply(conn, lead_id, AttemptEnded(attempt_id, outcome, step, fault), now, lead=lead)
        except lead_transitions.StaleLead:
            return None  # a disposition took the lead between the read and the write
        return step


async def release_unsent(
    store: Store,
    attempt_id: str,
    *,
    final_reason: str | None = None,
    next_attempt_at: datetime | None = None,
) -> None:
    """Give back a lease whose Originate was never sent: its attempt row goes, the count too.

    With `final_reason` the lead is done (do-not-call, denied number);
    otherwise it waits until `next_attempt_at` (outside the calling window,
    or a callback waiting for its agent).
    """
    async with store._write() as conn:
        held = await lead_transitions.leased_by(conn, attempt_id)
        await conn.execute(delete(call_attempts).where(call_attempts.c.id == attempt_id))
        if held is not None:
            lead_id, lead = held
            event = Released(attempt_id, until=next_attempt_at, final_reason=final_reason)
            with contextlib.suppress(lead_transitions.StaleLead):  # another writer already moved the lead on
                await lead_transitions.apply(conn, lead_id, event, utcnow(), lead=lead)


async def open_attempts(store: Store) -> list[OpenAttempt]:
    """Every attempt whose row is not ended, oldest first."""
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(
                    call_attempts.c.id,
                    call_attempts.c.campaign_id,
                    call_attempts.c.lead_id,
                    call_attempts.c.phone,
                    call_attempts.c.state,
                    call_attempts.c.dialed_at,
                    call_attempts.c.answered_at,
                    call_attempts.c.bridged_at,
                    call_attempts.c.agent_id,
                    call_attempts.c.server,
                )
                .where(call_attempts.c.state != "ended")
                .order_by(call_attempts.c.dialed_at)
            )
        ).all()
    return [OpenAttempt(*row) for row in rows]


async def not_sent(store: Store, attempt_id: str, *, now: datetime) -> None:
    """Asterisk refused the Originate because it is shutting down: nobody was called.

    The attempt keeps its row, ended with outcome `not_sent`; the lead is due
    again at once and this attempt does not count against its retries (the
    trunk's backoff, `dialer.core.trunks`, keeps it from looping meanwhile).
    Any other refusal is an attempt with outcome `refused` (`finish_with_rules`).
    """
    async with store._write() as conn:
        await conn.execute(
            update(call_attempts)
            # An attempt already ended (screened out, closed by a reconciliation) keeps its outcome.
            .where(call_attempts.c.id == attempt_id, call_attempts.c.state != "ended")
            .values(state="ended", outcome="not_sent", ended_at=_naive_utc(now))
        )
        held = await lead_transitions.leased_by(conn, attempt_id)
        if held is not None:
            lead_id, lead = held
            with contextlib.suppress(lead_transitions.StaleLead):  # another writer already moved the lead on
                await lead_transitions.apply(conn, lead_id, NotSent(attempt_id), now, lead=lead)
