"""Store writes that decide a lead's fate: after an attempt, when a lease is given back
unsent, and the attempts a crash or a disconnect left open.

The decisions are the pure core's (`dialer.core.retry`); these functions only
read what it needs and write its answer, each in one transaction.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dialer.core.faults import REFUSED_OUTCOME, after_fault, after_refusal, is_fault
from dialer.core.lead_lifecycle import AttemptEnded, Lead, LeadChange, NotSent, Released, transition
from dialer.core.retry import Close, Retry, RetryRule, after_attempt
from dialer.store import dialect, lead_transitions
from dialer.store.schema import call_attempts, leads
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


@dataclass(frozen=True)
class FinalRow:
    """An attempt's final row as `finish_with_rules` takes it, for `finish_many`."""

    attempt_id: str
    outcome: str
    now: datetime
    rules: Mapping[str, RetryRule]
    columns: Mapping[str, Any]


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
        return await _lead_step(conn, FinalRow(attempt_id, outcome, now, rules, columns), lead_id, lead)


async def _lead_step(conn: AsyncConnection, final: FinalRow, lead_id: int, lead: Lead) -> Retry | Close | None:
    """The lead's next step after its attempt's final row, written in the caller's transaction."""
    step, event = await _next_step(conn, final, lead_id, lead)
    try:
        await lead_transitions.apply(conn, lead_id, event, final.now, lead=lead)
    except lead_transitions.StaleLead:
        return None  # a disposition took the lead between the read and the write
    return step


async def _next_step(
    conn: AsyncConnection, final: FinalRow, lead_id: int, lead: Lead
) -> tuple[Retry | Close, AttemptEnded]:
    now, rules = final.now, final.rules
    fault = is_fault(final.outcome, bool(final.columns.get("cut_short")))
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
    elif final.outcome == REFUSED_OUTCOME:
        fault = True
        refusals = (
            await conn.execute(
                select(func.count())
                .select_from(call_attempts)
                .where(call_attempts.c.lead_id == lead_id, call_attempts.c.outcome == REFUSED_OUTCOME)
            )
        ).scalar_one()
        step = after_refusal(refusals, now, rules)
    else:
        step = after_attempt(final.outcome, lead.attempts, now, rules)
    # A fault (a refusal too) gives back the attempt the lease counted: the customer never said no.
    return step, AttemptEnded(final.attempt_id, final.outcome, step, fault)


async def finish_many(conn: AsyncConnection, finals: Sequence[FinalRow]) -> dict[str, Retry | Close | None]:
    """`finish_with_rules` for many attempts in the caller's transaction, the same rows written.

    Hundreds of calls ending together were as many transactions, each a handful
    of statements built anew. Here the attempts still open are read (and locked,
    on PostgreSQL) at once, their final rows written as one executemany per set
    of columns and their leads read at once; only each lead's guarded transition
    is a statement of its own. Returns each attempt's step (None: as
    `finish_with_rules`, already ended or its lead no longer leased by it).
    """
    steps: dict[str, Retry | Close | None] = {f.attempt_id: None for f in finals}
    if not finals:
        return steps
    still_open = set((await conn.execute(_OPEN_ATTEMPTS, {"ids": list(steps)})).scalars())
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for final in finals:
        if final.attempt_id not in still_open:
            continue  # a final row is written once
        columns = _columns(final.columns)
        by_columns.setdefault(tuple(sorted(columns)), []).append(
            {_ID: final.attempt_id, _OUTCOME: final.outcome, **columns}
        )
    if not by_columns:
        return steps
    for names, rows in by_columns.items():
        await conn.execute(_final_update(names), rows)
    held = {
        row.lease_attempt_id: (row.id, lead_transitions.lead_from_row(row))
        for row in await conn.execute(_LEASED_BY, {"ids": sorted(still_open)})
    }
    changes: list[tuple[int, LeadChange, datetime]] = []
    for final in finals:
        if final.attempt_id in still_open and final.attempt_id in held:
            lead_id, lead = held.pop(final.attempt_id)
            step, event = await _next_step(conn, final, lead_id, lead)
            changes.append((lead_id, transition(lead, event, _naive_utc(final.now)), final.now))
            steps[final.attempt_id] = step
    # The leads were read after this transaction's first write (and locked on PostgreSQL):
    # none moved since, so the guarded writes can go as one batch.
    await lead_transitions.write_many(conn, changes)
    return steps


_ID = "attempt_id_"  # bind names no column has
_OUTCOME = "outcome_"
_OPEN_ATTEMPTS = (
    select(call_attempts.c.id)
    .where(call_attempts.c.id.in_(bindparam("ids", expanding=True)), call_attempts.c.state != "ended")
    .with_for_update()
)
_LEASED_BY = (
    select(leads.c.id, *lead_transitions.LIFECYCLE_COLUMNS)
    .where(leads.c.lease_attempt_id.in_(bindparam("ids", expanding=True)))
    .with_for_update()
)


@functools.cache
def _final_update(names: tuple[str, ...]) -> Update:
    # Few column sets occur (one per way a call ends): each statement is built once.
    return (
        update(call_attempts)
        .where(call_attempts.c.id == bindparam(_ID), call_attempts.c.state != "ended")
        .values(state="ended", outcome=bindparam(_OUTCOME), **{n: bindparam(n) for n in names})
    )


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
