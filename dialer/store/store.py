"""The store: every read and write the daemon and the CLI make to the database.

Callers get plain dataclasses back, never SQLAlchemy rows, and database
errors are translated to `StoreError` at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dialer.core.lead_lifecycle import NEW_LEAD, AttemptEndedAsTold, Leased, LeadState, transition
from dialer.store import dialect, lead_transitions, migrate
from dialer.store.lease_tiers import LeaseTiers
from dialer.store.schema import GLOBAL_DNC, agents, call_attempts, campaigns, customers, dnc_numbers, leads
from dialer.store.private_file import create_private


class StoreError(Exception):
    """The database could not be opened, read or written."""


class UnknownCampaign(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no campaign named {name!r} in the database")
        self.name = name


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class Lease:
    attempt_id: str
    lead_id: int
    phone: str
    attempt_no: int
    customer_name: str | None
    tier: str | None
    timezone: str | None = None
    callback_id: int | None = None


@dataclass(frozen=True)
class OutcomeCount:
    campaign: str
    tier: str | None
    outcome: str | None
    """None while the attempt is in progress."""
    count: int


@dataclass(frozen=True)
class ImportSummary:
    added: int
    already_in_campaign: int


@dataclass(frozen=True)
class CampaignProgress:
    pending: int
    leased: int
    done: int
    outcomes: dict[str, int]

    @property
    def finished(self) -> bool:
        return self.pending == 0 and self.leased == 0


# Rows per import transaction, and the pause after each: SQLite's busy handler
# retries every few to 100 ms, so a writer waiting on the import gets its turn
# when the lock is free for a good share of the time.
IMPORT_BATCH = 2000
IMPORT_PAUSE = 0.005
IMPORT_PAUSE_SHARE = 0.25


async def insert_lead_batch(conn: AsyncConnection, campaign_id: int, rows: Sequence[Any], now: datetime) -> tuple[int, int]:
    """Customers and leads for `rows` in the open transaction `conn`: (leads added, already in the campaign).

    Bulk statements, and idempotent: a phone another writer adds at the same
    moment is no error (ON CONFLICT DO NOTHING), so concurrent imports of one
    number leave one customer and one lead.
    """
    by_phone = {row.phone: row for row in rows}
    fields = [
        {
            "b_phone": row.phone,
            "b_name": row.name,
            "b_external_id": row.customer_id,
            "b_tier": row.tier,
            "b_value": float(row.value) if row.value is not None else None,
            "b_timezone": row.timezone,
        }
        for row in by_phone.values()
    ]
    # The update comes first: its write takes SQLite's lock, so what this
    # transaction reads next no other writer can change before the commit.
    known = {k: func.coalesce(bindparam(f"b_{k}"), customers.c[k]) for k in ("name", "external_id", "tier", "value", "timezone")}
    await conn.execute(update(customers).where(customers.c.phone == bindparam("b_phone")).values(**known), fields)
    await conn.execute(
        dialect.insert_ignoring_duplicates(conn, customers),
        [
            {
                "phone": f["b_phone"],
                "name": f["b_name"],
                "external_id": f["b_external_id"],
                "tier": f["b_tier"],
                "value": f["b_value"],
                "timezone": f["b_timezone"],
                "created_at": now,
            }
            for f in fields
        ],
    )
    ids = dict(
        (await conn.execute(select(customers.c.phone, customers.c.id).where(customers.c.phone.in_(list(by_phone))))).all()
    )
    present = set(
        (
            await conn.execute(
                select(leads.c.customer_id).where(
                    leads.c.campaign_id == campaign_id, leads.c.customer_id.in_(list(ids.values()))
                )
            )
        ).scalars()
    )
    fresh = [
        {
            "campaign_id": campaign_id,
            "customer_id": ids[phone],
            "phone": phone,
            "state": NEW_LEAD.state.value,
            "attempts": NEW_LEAD.attempts,
            "data": dict(row.data),
            "created_at": now,
        }
        for phone, row in by_phone.items()
        if ids[phone] not in present
    ]
    if fresh:
        await conn.execute(dialect.insert_ignoring_duplicates(conn, leads), fresh)
    return len(fresh), len(rows) - len(fresh)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.writes = 0
        """Write transactions committed through this store: a reader that saw this count may skip
        reading again while it holds (no write of this process since)."""

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True) -> "Store":
        """The store at `url`: sqlite+aiosqlite:// (a file, the default) or postgresql+asyncpg://."""
        try:
            parsed = make_url(url)
            dialect.check_supported(parsed)
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreError(f"cannot use database URL: {exc}") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            if not parsed.query.get("uri"):
                try:
                    create_private(Path(parsed.database))
                except OSError as exc:
                    raise StoreError(f"cannot create database file {parsed.database}: {exc.strerror or exc}") from exc
        try:
            engine = create_async_engine(parsed, **dialect.engine_options(parsed))
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot use database URL {dialect.shown(parsed)}: {exc}") from exc
        dialect.prepare(engine)
        store = cls(engine)
        if upgrade:
            try:
                await migrate.upgrade(engine)
            except (SQLAlchemyError, OSError) as exc:
                await engine.dispose()
                raise StoreError(f"cannot open database {dialect.shown(parsed)}: {exc}") from exc
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; database errors leave here as StoreError."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database write failed: {exc}") from exc
        finally:
            self.writes += 1  # a failed one too: it may have committed before failing to say so

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database read failed: {exc}") from exc

    # -- campaigns -------------------------------------------------------

    async def sync_campaign(self, name: str, type_: str) -> int:
        """Create the campaign's row if needed; return its id.

        Daemons starting together on one PostgreSQL may both create it: the
        insert skips a row another has just made instead of failing.
        """
        now = utcnow()
        async with self._write() as conn:
            if (await conn.execute(select(campaigns.c.id).where(campaigns.c.name == name))).first() is None:
                await conn.execute(
                    dialect.insert_ignoring_duplicates(conn, campaigns).values(
                        name=name, type=type_, created_at=now, updated_at=now
                    )
                )
            await conn.execute(update(campaigns).where(campaigns.c.name == name).values(type=type_, updated_at=now))
            return (await conn.execute(select(campaigns.c.id).where(campaigns.c.name == name))).scalar_one()

    async def campaign_id(self, name: str) -> int:
        async with self._read() as conn:
            row = (await conn.execute(select(campaigns.c.id).where(campaigns.c.name == name))).first()
        if row is None:
            raise UnknownCampaign(name)
        return row.id

    # -- leads -----------------------------------------------------------

    async def import_leads(
        self,
        campaign_id: int,
        rows: Iterable[Any],
        *,
        batch_size: int = IMPORT_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> ImportSummary:
        """Add lead rows that went through the intake (`dialer.leads.intake.LeadRow`).

        A customer is keyed by phone number and shared across campaigns; a
        number already in this campaign is left as it is. Rows are written
        `batch_size` at a time, each batch its own short transaction, with a
        pause after each long enough for other writers (the daemon's leases and
        outcomes) to take SQLite's write lock in between. Re-importing the same
        rows, after a crash half-way or not, adds nothing twice. `on_batch` is
        told the rows done so far after each batch.
        """
        added = existing = done = 0
        batch: list[Any] = []
        iterator = iter(rows)
        while True:
            batch = list(itertools.islice(iterator, batch_size))
            if not batch:
                break
            began = time.monotonic()
            async with self._write() as conn:
                new, known = await insert_lead_batch(conn, campaign_id, batch, utcnow())
            held = time.monotonic() - began
            added += new
            existing += known
            done += len(batch)
            if on_batch is not None:
                on_batch(done)
            if len(batch) == batch_size:
                await asyncio.sleep(max(IMPORT_PAUSE, held * IMPORT_PAUSE_SHARE))
        return ImportSummary(added=added, already_in_campaign=existing)

    async def lease_due_leads(
        self,
        campaign_id: int,
        limit: int,
        now: datetime,
        *,
        tiers: LeaseTiers | None = None,
    ) -> list[Lease]:
        """Lease up to `limit` due leads and write their attempt rows, in one transaction.

        The attempt row exists before any Originate leaves, so a crash after
        this point can never lose the fact that a number may have been dialed.
        `tiers` picks which customers' leads (by tier) and in what order
        (`dialer.store.tier_store`). The leads read are locked for this
        transaction and rows another daemon has locked are passed over
        (`dialect.claiming`), so daemons sharing one PostgreSQL never lease
        one lead twice.
        """
        if limit <= 0:
            return []
        now = _naive_utc(now)
        leased: list[Lease] = []
        async with self._write() as conn:
            rows = (
                await conn.execute(
                    dialect.claiming(select(
                        leads.c.id,
                        leads.c.phone,
                        *lead_transitions.LIFECYCLE_COLUMNS,
                        customers.c.name,
                        customers.c.tier,
                        customers.c.timezone,
                    )
                    .join(customers, customers.c.id == leads.c.customer_id)
                    .where(
                        leads.c.campaign_id == campaign_id,
                        leads.c.state == LeadState.pending.value,
                        (leads.c.next_attempt_at.is_(None)) | (leads.c.next_attempt_at <= now),
                        # A callback booked (or a retry disposed) while the call is still up
                        # makes its lead pending: the customer must not be dialed again
                        # until that call's attempt has ended (ix_call_attempts_lead).
                        ~exists().where(call_attempts.c.lead_id == leads.c.id, call_attempts.c.state != "ended"),
                        *(tiers.where() if tiers else ()),
                    )
                    .order_by(
                        leads.c.priority.desc(),
                        *(tiers.order() if tiers else ()),
                        leads.c.next_attempt_at.is_not(None),
                        leads.c.next_attempt_at,
                        leads.c.id,
                    )
                    .limit(limit), leads)
                )
            ).all()
            for row in rows:
                attempt_id = uuid.uuid4().hex
                change = transition(lead_transitions.lead_from_row(row), Leased(attempt_id), now)
                attempt_no = change.after.attempts
                try:
                    await lead_transitions.write(conn, row.id, change, now)
                except lead_transitions.StaleLead:
                    continue  # another writer leased it between our read and this update
                await conn.execute(
                    insert(call_attempts).values(
                        id=attempt_id,
                        lead_id=row.id,
                        campaign_id=campaign_id,
                        phone=row.phone,
                        attempt_no=attempt_no,
                        state="dialing",
                        dialed_at=now,
                        abandoned=False,
                    )
                )
                leased.append(
                    Lease(attempt_id, row.id, row.phone, attempt_no, row.name, row.tier, row.timezone, row.callback_id)
                )
        return leased

    async def update_attempt(self, attempt_id: str, **values: Any) -> None:
        values = dialect.fit(call_attempts, {k: _naive_utc(v) if isinstance(v, datetime) else v for k, v in values.items()})
        async with self._write() as conn:
            await conn.execute(update(call_attempts).where(call_attempts.c.id == attempt_id).values(**values))

    async def finish_attempt(
        self,
        attempt_id: str,
        *,
        outcome: str,
        lead_state: str,
        next_attempt_at: datetime | None = None,
        **values: Any,
    ) -> None:
        """Write an attempt's final outcome and its lead's next state in one transaction.

        The caller names the lead's next state (`dialer.store.lead_outcomes.finish_with_rules`
        asks the campaign's rules instead): `done` closes it with `outcome` and no reason;
        `pending` makes it due at `next_attempt_at` (at once when None).
        """
        values = dialect.fit(call_attempts, {k: _naive_utc(v) if isinstance(v, datetime) else v for k, v in values.items()})
        now = utcnow()
        async with self._write() as conn:
            await conn.execute(
                update(call_attempts)
                .where(call_attempts.c.id == attempt_id)
                .values(state="ended", outcome=outcome, **values)
            )
            held = await lead_transitions.leased_by(conn, attempt_id)
            if held is None:
                return
            lead_id, lead = held
            told = AttemptEndedAsTold(attempt_id, outcome, done=lead_state == "done", next_attempt_at=next_attempt_at)
            with contextlib.suppress(lead_transitions.StaleLead):  # another writer already moved the lead on
                await lead_transitions.apply(conn, lead_id, told, now, lead=lead)

    async def progress(self, campaign_id: int) -> CampaignProgress:
        async with self._read() as conn:
            states = dict(
                (
                    await conn.execute(
                        select(leads.c.state, func.count())
                        .where(leads.c.campaign_id == campaign_id)
                        .group_by(leads.c.state)
                    )
                ).all()
            )
            outcomes = dict(
                (
                    await conn.execute(
                        select(call_attempts.c.outcome, func.count())
                        .where(call_attempts.c.campaign_id == campaign_id, call_attempts.c.outcome.is_not(None))
                        .group_by(call_attempts.c.outcome)
                    )
                ).all()
            )
        return CampaignProgress(
            pending=states.get("pending", 0),
            leased=states.get("leased", 0),
            done=states.get("done", 0),
            outcomes=outcomes,
        )

    async def recent_attempts(self, campaign_id: int, since: datetime, limit: int) -> list[dict[str, Any]]:
        """Ended attempts since `since`, oldest first, at most the `limit` newest: the pacing's memory."""
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(
                        call_attempts.c.outcome,
                        call_attempts.c.dialed_at,
                        call_attempts.c.answered_at,
                        call_attempts.c.bridged_at,
                        call_attempts.c.ended_at,
                    )
                    .where(
                        call_attempts.c.campaign_id == campaign_id,
                        call_attempts.c.state == "ended",
                        call_attempts.c.ended_at >= _naive_utc(since),
                        call_attempts.c.cut_short.is_(False),  # a PBX fault's, not the customer's
                    )
                    .order_by(call_attempts.c.ended_at.desc())
                    .limit(limit)
                )
            ).mappings().all()
        return [dict(r) for r in reversed(rows)]

    async def attempts(self, campaign_id: int) -> list[dict[str, Any]]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(call_attempts)
                    .where(call_attempts.c.campaign_id == campaign_id)
                    .order_by(call_attempts.c.dialed_at, call_attempts.c.id)
                )
            ).mappings().all()
        return [dict(r) for r in rows]

    async def leads_to_dial(self, campaign_id: int) -> int:
        """Leads of the campaign not done yet (due now or later, or leased): one COUNT.

        A number on the global or the campaign's do-not-call list is closed only when it is
        leased; it is left out here, or a list loaded after a big import would promise the
        pacing answers that never come (the unique (phone, scope) index serves the lookup)."""
        campaign_name = select(campaigns.c.name).where(campaigns.c.id == campaign_id).scalar_subquery()
        listed = (
            select(dnc_numbers.c.phone)
            .where(dnc_numbers.c.phone == leads.c.phone, dnc_numbers.c.scope.in_([GLOBAL_DNC, campaign_name]))
            .exists()
        )
        async with self._read() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count())
                        .select_from(leads)
                        .where(leads.c.campaign_id == campaign_id, leads.c.state != LeadState.done.value, ~listed)
                    )
                ).scalar_one()
            )

    async def leads(self, campaign_id: int) -> list[dict[str, Any]]:
        async with self._read() as conn:
            rows = (
                await conn.execute(select(leads).where(leads.c.campaign_id == campaign_id).order_by(leads.c.id))
            ).mappings().all()
        return [dict(r) for r in rows]

    # -- agents ----------------------------------------------------------

    async def sync_agents(self, configured: Sequence[Any], now: datetime) -> None:
        now = _naive_utc(now)
        async with self._write() as conn:
            for agent in configured:
                values = {"name": agent.name, "interface": agent.interface}
                # A row another daemon made meanwhile is skipped, then updated like any existing one.
                await conn.execute(
                    dialect.insert_ignoring_duplicates(conn, agents).values(
                        id=agent.id, state="logged_out", state_changed_at=now, **values
                    )
                )
                await conn.execute(update(agents).where(agents.c.id == agent.id).values(**values))

    async def set_agent_state(self, agent_id: str, state: str, now: datetime) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(agents).where(agents.c.id == agent_id).values(state=state, state_changed_at=_naive_utc(now))
            )

    # -- operations (control API, metrics) ------------------------------------

    async def outcome_counts(self) -> list[OutcomeCount]:
        """Attempts per campaign, customer tier and outcome (None: in progress)."""
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(campaigns.c.name, customers.c.tier, call_attempts.c.outcome, func.count())
                    .select_from(call_attempts)
                    .join(campaigns, campaigns.c.id == call_attempts.c.campaign_id)
                    .join(leads, leads.c.id == call_attempts.c.lead_id)
                    .join(customers, customers.c.id == leads.c.customer_id)
                    .group_by(campaigns.c.name, customers.c.tier, call_attempts.c.outcome)
                )
            ).all()
        return [OutcomeCount(*row) for row in rows]

    async def check_writable(self) -> None:
        """Raise StoreError unless a write transaction can be made now."""
        async with self._write() as conn:
            # Takes SQLite's write lock and fails on a read-only file, yet changes nothing.
            await conn.execute(update(agents).where(agents.c.id.is_(None)).values(state="x"))

    async def find_leads(self, *, phone: str | None = None, lead_id: int | None = None) -> list[dict[str, Any]]:
        """Leads by phone number or id, each with its customer, campaign and last attempts."""
        query = (
            select(
                leads.c.id,
                leads.c.phone,
                leads.c.state,
                leads.c.attempts,
                leads.c.next_attempt_at,
                leads.c.final_outcome,
                leads.c.data,
                leads.c.customer_id,
                campaigns.c.name.label("campaign"),
                customers.c.name.label("customer_name"),
                customers.c.external_id,
                customers.c.tier,
                customers.c.value,
                customers.c.timezone,
            )
            .join(campaigns, campaigns.c.id == leads.c.campaign_id)
            .join(customers, customers.c.id == leads.c.customer_id)
            .order_by(leads.c.id)
        )
        if phone is not None:
            query = query.where(leads.c.phone == phone)
        if lead_id is not None:
            query = query.where(leads.c.id == lead_id)
        async with self._read() as conn:
            found = [dict(r) for r in (await conn.execute(query)).mappings().all()]
            for lead in found:
                lead["last_contacts"] = await self._last_contacts(conn, lead["customer_id"])
        return found

    async def _last_contacts(self, conn: AsyncConnection, customer_id: int, limit: int = 5) -> list[dict[str, Any]]:
        rows = (
            await conn.execute(
                select(
                    call_attempts.c.id.label("attempt"),
                    campaigns.c.name.label("campaign"),
                    call_attempts.c.dialed_at,
                    call_attempts.c.outcome,
                    call_attempts.c.agent_id,
                )
                .join(leads, leads.c.id == call_attempts.c.lead_id)
                .join(campaigns, campaigns.c.id == call_attempts.c.campaign_id)
                .where(leads.c.customer_id == customer_id)
                .order_by(call_attempts.c.dialed_at.desc())
                .limit(limit)
            )
        ).mappings().all()
        return [dict(r) for r in rows]
