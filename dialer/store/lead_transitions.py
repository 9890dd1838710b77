"""The one place a lead's status is written: the pure life cycle's change, applied in the caller's transaction.

`apply` reads the lead (or takes the view the caller just read), asks
`dialer.core.lead_lifecycle.transition` for the change and writes exactly the
columns it names, guarded by the state it was computed from: a writer that
read a stale lead changes nothing and gets `StaleLead`. A callback the change
fulfils is closed in the same transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dialer.core.lead_lifecycle import LEAD_COLUMNS, IllegalTransition, Lead, LeadChange, LeadEvent, LeadState, transition
from dialer.store.schema import callbacks, leads


class StaleLead(IllegalTransition):
    """The lead changed between its read and the write: nothing was written.

    An IllegalTransition too: the event was meant for a lead that is no longer there.
    """


def _column_time(moment: datetime) -> datetime:
    # Naive UTC as the schema stores times (the same rule as dialer.store.store, which imports this module).
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def lead_from_row(row: Any) -> Lead:
    """A `leads` row (with at least the life-cycle columns) as the core's view."""
    return Lead(
        state=LeadState(row.state),
        attempts=row.attempts,
        lease_attempt_id=row.lease_attempt_id,
        next_attempt_at=row.next_attempt_at,
        priority=row.priority,
        final_outcome=row.final_outcome,
        final_reason=row.final_reason,
        callback_id=row.callback_id,
    )


LIFECYCLE_COLUMNS = tuple(leads.c[name] for name in LEAD_COLUMNS)


async def read(conn: AsyncConnection, lead_id: int) -> Lead | None:
    row = (await conn.execute(select(*LIFECYCLE_COLUMNS).where(leads.c.id == lead_id))).first()
    return None if row is None else lead_from_row(row)


async def leased_by(conn: AsyncConnection, attempt_id: str) -> tuple[int, Lead] | None:
    """The lead `attempt_id` holds, with its id; None when it holds none."""
    row = (
        await conn.execute(select(leads.c.id, *LIFECYCLE_COLUMNS).where(leads.c.lease_attempt_id == attempt_id))
    ).first()
    return None if row is None else (row.id, lead_from_row(row))


def _is(column: ColumnElement[Any], value: object) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def guard(lead: Lead) -> tuple[ColumnElement[bool], ...]:
    """The WHERE clause that holds only while the lead is as `lead` says."""
    return (
        leads.c.state == lead.state.value,
        _is(leads.c.lease_attempt_id, lead.lease_attempt_id),
        leads.c.attempts == lead.attempts,
        _is(leads.c.callback_id, lead.callback_id),
    )


def values(change: LeadChange) -> dict[str, Any]:
    """The changed columns as the `leads` table stores them."""
    out: dict[str, Any] = {}
    for name, value in change.columns().items():
        if isinstance(value, LeadState):
            value = value.value
        elif isinstance(value, datetime):
            value = _column_time(value)
        out[name] = value
    return out


async def write(conn: AsyncConnection, lead_id: int, change: LeadChange, now: datetime) -> None:
    """Write a change computed by `transition` from the lead as read; StaleLead if it moved since."""
    where = (leads.c.id == lead_id, *guard(change.before))
    columns = values(change)
    if columns:
        matched = (await conn.execute(update(leads).where(*where).values(**columns))).rowcount
    else:  # nothing to write (a lead closed again for the same reason), but it must still be as read
        matched = len((await conn.execute(select(leads.c.id).where(*where))).all())
    if matched != 1:
        raise StaleLead(f"lead {lead_id} changed under this write")
    if change.closes_callback is not None:
        await conn.execute(
            update(callbacks)
            .where(callbacks.c.id == change.closes_callback, callbacks.c.state == "scheduled")
            .values(state="done", attempt_id=change.by_attempt, done_at=_column_time(now))
        )


async def write_many(conn: AsyncConnection, changes: Sequence[tuple[int, LeadChange, datetime]]) -> None:
    """`write` for many leads, one executemany per shape of change (its columns, and which
    guarded values are NULL); a change that closes a callback or writes nothing goes alone.

    For leads the caller read in this transaction under a lock (FOR UPDATE on PostgreSQL;
    on SQLite a transaction that has written holds the database's lock): none can have
    moved since, and a count that says otherwise raises StaleLead for the whole batch.
    """
    groups: dict[tuple[tuple[str, ...], bool, bool], list[dict[str, Any]]] = {}
    for lead_id, change, now in changes:
        columns = values(change)
        if not columns or change.closes_callback is not None:
            await write(conn, lead_id, change, now)
            continue
        before = change.before
        key = (tuple(sorted(columns)), before.lease_attempt_id is None, before.callback_id is None)
        groups.setdefault(key, []).append(
            {
                _LEAD_ID: lead_id,
                "was_state_": before.state.value,
                "was_lease_": before.lease_attempt_id,
                "was_attempts_": before.attempts,
                "was_callback_": before.callback_id,
                **{f"set_{name}": value for name, value in columns.items()},
            }
        )
    for (names, no_lease, no_callback), rows in groups.items():
        matched = (await conn.execute(_update_many(names, no_lease, no_callback), rows)).rowcount
        if matched >= 0 and matched != len(rows):  # -1: a driver that does not count an executemany
            raise StaleLead(f"{len(rows) - matched} of {len(rows)} leads changed under this write")


_LEAD_ID = "lead_id_"


@functools.cache
def _update_many(names: tuple[str, ...], no_lease: bool, no_callback: bool) -> Update:
    # `guard` with bind parameters, built once per shape.
    where = (
        leads.c.id == bindparam(_LEAD_ID),
        leads.c.state == bindparam("was_state_"),
        leads.c.lease_attempt_id.is_(None) if no_lease else leads.c.lease_attempt_id == bindparam("was_lease_"),
        leads.c.attempts == bindparam("was_attempts_"),
        leads.c.callback_id.is_(None) if no_callback else leads.c.callback_id == bindparam("was_callback_"),
    )
    return update(leads).where(*where).values({name: bindparam(f"set_{name}") for name in names})


async def apply(
    conn: AsyncConnection, lead_id: int, event: LeadEvent, now: datetime, *, lead: Lead | None = None
) -> LeadChange:
    """Apply `event` to the lead in the caller's transaction and return the change written.

    `lead` is the view the caller already read (saves a query); times in it
    are naive UTC as stored, and `now` is compared as such. Raises
    `IllegalTransition` (the event does not apply), `StaleLead` (the lead
    moved since `lead` was read) or LookupError (no such lead).
    """
    if lead is None:
        lead = await read(conn, lead_id)
        if lead is None:
            raise LookupError(f"no lead {lead_id}")
    change = transition(lead, event, _column_time(now))
    await write(conn, lead_id, change, now)
    return change
