"""`dialer.store.Store` against a real SQLite file (aiosqlite) and a real PostgreSQL (asyncpg), migrated by Alembic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.script import ScriptDirectory
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from dialer.leads.csv_import import LeadRow
from dialer.store.migrate import alembic_config
from dialer.store.schema import metadata
from dialer.store.store import Store, StoreError, UnknownCampaign

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def row(phone: str, line: int = 2, **fields) -> LeadRow:
    return LeadRow(line=line, phone=phone, **fields)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def campaign_with_leads(store: Store, phones: list[str], name: str = "renewals") -> int:
    campaign = await store.sync_campaign(name, "sales")
    await store.import_leads(campaign, [row(p, line=i + 2) for i, p in enumerate(phones)])
    return campaign


async def scalar(store: Store, sql: str, **params) -> object:
    async with store.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


# -- schema -------------------------------------------------------------------


async def test_migrations_create_the_schema_the_code_expects(empty_store_url: str) -> None:
    store = await Store.open(empty_store_url)
    try:
        await check_schema(store)
    finally:
        await store.close()


async def check_schema(store: Store) -> None:
    async with store.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        versions = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
        drift = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    assert {"customers", "campaigns", "leads", "call_attempts", "agents", "alembic_version"} <= tables
    assert versions == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert drift == [], f"schema.py and the migrations disagree: {drift}"


async def test_reopening_a_migrated_database_keeps_its_data(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/nested/dir/x.db"
    first = await Store.open(url)
    await first.sync_campaign("renewals", "sales")
    await first.close()
    second = await Store.open(url)
    try:
        assert await second.campaign_id("renewals") >= 1
    finally:
        await second.close()


async def test_the_database_is_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        assert await scalar(store, "PRAGMA journal_mode") == "wal"
        assert await scalar(store, "PRAGMA foreign_keys") == 1
        await store.sync_campaign("renewals", "sales")
        assert (tmp_path / "x.db-wal").exists()
    finally:
        await store.close()


async def test_an_unusable_database_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(StoreError):
        await Store.open(f"sqlite+aiosqlite:///{tmp_path}/not-a-db")


# -- campaigns and leads ------------------------------------------------------


async def test_sync_campaign_is_idempotent_and_unknown_names_raise(store: Store) -> None:
    first = await store.sync_campaign("renewals", "sales")
    assert await store.sync_campaign("renewals", "survey") == first
    assert await store.campaign_id("renewals") == first
    assert await scalar(store, "SELECT type FROM campaigns WHERE id = :id", id=first) == "survey"
    with pytest.raises(UnknownCampaign, match="nope"):
        await store.campaign_id("nope")


async def test_import_leads_shares_customers_across_campaigns_and_counts_duplicates(store: Store) -> None:
    renewals = await store.sync_campaign("renewals", "sales")
    survey = await store.sync_campaign("survey", "survey")
    first = await store.import_leads(
        renewals,
        [
            row("+15550001", name="Ann", tier="gold", value=Decimal("1250.50"), timezone="America/New_York",
                customer_id="C1", data={"plan": "pro"}),
            row("+15550002", line=3, name="Ben"),
        ],
    )
    assert (first.added, first.already_in_campaign) == (2, 0)

    again = await store.import_leads(renewals, [row("+15550001"), row("+15550003", line=3)])
    assert (again.added, again.already_in_campaign) == (1, 1)

    other = await store.import_leads(survey, [row("+15550001", tier="platinum")])
    assert (other.added, other.already_in_campaign) == (1, 0)

    assert await scalar(store, "SELECT count(*) FROM customers") == 3
    assert await scalar(store, "SELECT count(*) FROM leads") == 4
    # The same customer in both campaigns; known fields merged, empty ones left alone.
    async with store.engine.connect() as conn:
        ann = (await conn.execute(text("SELECT * FROM customers WHERE phone = '+15550001'"))).mappings().one()
    assert (ann["name"], ann["tier"], ann["value"], ann["timezone"], ann["external_id"]) == (
        "Ann", "platinum", 1250.5, "America/New_York", "C1"
    )
    leads = await store.leads(renewals)
    assert [(lead["phone"], lead["state"], lead["attempts"]) for lead in leads] == [
        ("+15550001", "pending", 0), ("+15550002", "pending", 0), ("+15550003", "pending", 0)
    ]
    assert leads[0]["data"] == {"plan": "pro"}
    assert {lead["customer_id"] for lead in await store.leads(survey)} == {leads[0]["customer_id"]}


# -- leasing ----------------------------------------------------------------------


async def test_lease_writes_attempt_rows_before_returning(store: Store) -> None:
    campaign = await store.sync_campaign("renewals", "sales")
    await store.import_leads(campaign, [row("+15550001", name="Ann", tier="gold"), row("+15550002", line=3)])
    leases = await store.lease_due_leads(campaign, 10, NOW)
    assert [(lease.phone, lease.attempt_no, lease.customer_name, lease.tier) for lease in leases] == [
        ("+15550001", 1, "Ann", "gold"), ("+15550002", 1, None, None)
    ]
    attempts = {a["id"]: a for a in await store.attempts(campaign)}
    assert set(attempts) == {lease.attempt_id for lease in leases}
    for lease in leases:
        written = attempts[lease.attempt_id]
        assert (written["lead_id"], written["phone"], written["state"], written["attempt_no"]) == (
            lease.lead_id, lease.phone, "dialing", 1
        )
        assert written["dialed_at"] == NOW.replace(tzinfo=None), "times are stored as naive UTC"
        assert written["outcome"] is None
    leads = {lead["id"]: lead for lead in await store.leads(campaign)}
    for lease in leases:
        assert leads[lease.lead_id]["state"] == "leased"
        assert leads[lease.lead_id]["lease_attempt_id"] == lease.attempt_id
        assert leads[lease.lead_id]["attempts"] == 1


async def test_lease_respects_the_limit_and_never_returns_a_lead_twice(store: Store) -> None:
    campaign = await campaign_with_leads(store, [f"+1555000{i}" for i in range(5)])
    assert await store.lease_due_leads(campaign, 0, NOW) == []
    first = await store.lease_due_leads(campaign, 2, NOW)
    second = await store.lease_due_leads(campaign, 2, NOW)
    third = await store.lease_due_leads(campaign, 2, NOW)
    fourth = await store.lease_due_leads(campaign, 2, NOW)
    assert [len(batch) for batch in (first, second, third, fourth)] == [2, 2, 1, 0]
    lead_ids = [lease.lead_id for batch in (first, second, third) for lease in batch]
    assert len(set(lead_ids)) == 5
    assert lead_ids == sorted(lead_ids), "fresh leads go in the order they were loaded"


async def test_concurrent_leases_never_hand_out_the_same_lead(store: Store) -> None:
    campaign = await campaign_with_leads(store, [f"+1555000{i}" for i in range(6)])
    batches = await asyncio.gather(*(store.lease_due_leads(campaign, 4, NOW) for _ in range(3)))
    lead_ids = [lease.lead_id for batch in batches for lease in batch]
    assert len(lead_ids) == len(set(lead_ids)), (
        f"concurrent lease_due_leads calls leased the same lead twice: {sorted(lead_ids)}; the SELECT runs "
        "outside the write transaction (pysqlite defers BEGIN to the first UPDATE), so guard the UPDATE with "
        "state = 'pending' and skip rows it did not change, or begin the transaction IMMEDIATE"
    )
    assert await scalar(store, "SELECT count(*) FROM call_attempts") == len(lead_ids)


async def test_lease_only_returns_leads_that_are_due(store: Store) -> None:
    campaign = await campaign_with_leads(store, ["+15550001", "+15550002", "+15550003"])
    first = await store.lease_due_leads(campaign, 3, NOW)
    by_phone = {lease.phone: lease for lease in first}
    # Retry +15550001 in an hour and +15550002 in ten minutes; +15550003 is done.
    await store.finish_attempt(by_phone["+15550001"].attempt_id, outcome="busy", lead_state="pending",
                               next_attempt_at=NOW + timedelta(hours=1))
    await store.finish_attempt(by_phone["+15550002"].attempt_id, outcome="no_answer", lead_state="pending",
                               next_attempt_at=NOW + timedelta(minutes=10))
    await store.finish_attempt(by_phone["+15550003"].attempt_id, outcome="answered", lead_state="done")

    assert await store.lease_due_leads(campaign, 5, NOW + timedelta(minutes=9)) == []
    due = await store.lease_due_leads(campaign, 5, NOW + timedelta(hours=2))
    assert [(lease.phone, lease.attempt_no) for lease in due] == [("+15550002", 2), ("+15550001", 2)], (
        "retries go in the order they fell due"
    )


async def test_lease_accepts_an_aware_time_in_another_zone(store: Store) -> None:
    campaign = await campaign_with_leads(store, ["+15550001"])
    [lease] = await store.lease_due_leads(campaign, 1, NOW)
    await store.finish_attempt(lease.attempt_id, outcome="busy", lead_state="pending",
                               next_attempt_at=NOW + timedelta(minutes=30))
    tokyo = NOW.astimezone(ZoneInfo("Asia/Tokyo"))
    assert await store.lease_due_leads(campaign, 1, tokyo + timedelta(minutes=29)) == []
    assert len(await store.lease_due_leads(campaign, 1, tokyo + timedelta(minutes=30))) == 1


async def test_leases_stay_within_their_campaign(store: Store) -> None:
    renewals = await campaign_with_leads(store, ["+15550001"], "renewals")
    survey = await campaign_with_leads(store, ["+15550001", "+15550002"], "survey")
    assert [lease.phone for lease in await store.lease_due_leads(renewals, 10, NOW)] == ["+15550001"]
    assert [lease.phone for lease in await store.lease_due_leads(survey, 10, NOW)] == ["+15550001", "+15550002"]


# -- finishing ------------------------------------------------------------------


async def test_finish_attempt_updates_the_attempt_and_its_lead_together(store: Store) -> None:
    campaign = await campaign_with_leads(store, ["+15550001"])
    [lease] = await store.lease_due_leads(campaign, 1, NOW)
    await store.update_attempt(lease.attempt_id, state="up", answered_at=NOW + timedelta(seconds=4))
    await store.finish_attempt(
        lease.attempt_id,
        outcome="answered",
        lead_state="done",
        ended_at=NOW + timedelta(seconds=60),
        agent_id="alice",
        hangup_cause=16,
        abandoned=False,
    )
    [attempt] = await store.attempts(campaign)
    assert (attempt["state"], attempt["outcome"], attempt["agent_id"], attempt["hangup_cause"]) == (
        "ended", "answered", "alice", 16
    )
    assert attempt["answered_at"] == datetime(2026, 3, 2, 14, 0, 4)
    assert attempt["ended_at"] == datetime(2026, 3, 2, 14, 1, 0)
    [lead] = await store.leads(campaign)
    assert (lead["state"], lead["final_outcome"], lead["lease_attempt_id"], lead["next_attempt_at"]) == (
        "done", "answered", None, None
    )


async def test_text_from_asterisk_longer_than_its_column_is_cut_alike_on_both_databases(store: Store) -> None:
    from dialer.store.lead_outcomes import finish_with_rules

    campaign = await campaign_with_leads(store, ["+15550001", "+15550002"])
    first, second = await store.lease_due_leads(campaign, 2, NOW)
    refusal = "Channel PJSIP/" + "x" * 250 + " does not exist"  # a refused Originate's message, 200 chars kept
    await store.update_attempt(first.attempt_id, channel="Local/" + "9" * 300 + "@dialer-out;1")
    await store.finish_attempt(first.attempt_id, outcome="failed", lead_state="done", hangup_cause_text=refusal)
    await finish_with_rules(store, second.attempt_id, outcome="failed", now=NOW, rules={}, hangup_cause_text=refusal[:200])
    attempts = {a["id"]: a for a in await store.attempts(campaign)}
    for lease in (first, second):
        assert (attempts[lease.attempt_id]["state"], attempts[lease.attempt_id]["hangup_cause_text"]) == (
            "ended", refusal[:64]
        )
    assert attempts[first.attempt_id]["channel"] == ("Local/" + "9" * 300)[:128]


async def test_finish_attempt_to_retry_sets_the_next_time_and_no_final_outcome(store: Store) -> None:
    campaign = await campaign_with_leads(store, ["+15550001"])
    [lease] = await store.lease_due_leads(campaign, 1, NOW)
    await store.finish_attempt(lease.attempt_id, outcome="busy", lead_state="pending",
                               next_attempt_at=NOW + timedelta(minutes=5))
    [lead] = await store.leads(campaign)
    assert (lead["state"], lead["final_outcome"], lead["next_attempt_at"]) == (
        "pending", None, datetime(2026, 3, 2, 14, 5)
    )


async def refuse_lead_updates(store: Store) -> None:
    """Make any UPDATE of `leads` fail inside the database."""
    async with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(
                "CREATE FUNCTION refuse_lead_update() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'lead update refused'; END $$"
            ))
            await conn.execute(text(
                "CREATE TRIGGER refuse_lead_update BEFORE UPDATE ON leads "
                "FOR EACH ROW EXECUTE FUNCTION refuse_lead_update()"
            ))
            return
        await conn.execute(text(
            "CREATE TRIGGER refuse_lead_update BEFORE UPDATE ON leads "
            "BEGIN SELECT RAISE(ABORT, 'lead update refused'); END"
        ))


async def test_finish_attempt_is_one_transaction(store: Store) -> None:
    campaign = await campaign_with_leads(store, ["+15550001"])
    [lease] = await store.lease_due_leads(campaign, 1, NOW)
    await refuse_lead_updates(store)
    with pytest.raises(Exception, match="lead update refused"):
        await store.finish_attempt(lease.attempt_id, outcome="answered", lead_state="done")
    [attempt] = await store.attempts(campaign)
    assert (attempt["state"], attempt["outcome"]) == ("dialing", None), "the attempt was updated without its lead"


async def test_write_errors_reach_callers_as_store_errors(store: Store) -> None:
    campaign = await campaign_with_leads(store, ["+15550001"])
    [lease] = await store.lease_due_leads(campaign, 1, NOW)
    await refuse_lead_updates(store)
    with pytest.raises(Exception) as raised:
        await store.finish_attempt(lease.attempt_id, outcome="answered", lead_state="done")
    assert isinstance(raised.value, StoreError), (
        f"finish_attempt let {type(raised.value).__module__}.{type(raised.value).__name__} through; "
        "store.py's docstring promises database errors are translated to StoreError at its boundary"
    )


async def test_progress_counts_leads_by_state_and_attempts_by_outcome(store: Store) -> None:
    campaign = await campaign_with_leads(store, [f"+1555000{i}" for i in range(5)])
    other = await campaign_with_leads(store, ["+15559999"], "other")
    empty = await store.progress(campaign)
    assert (empty.pending, empty.leased, empty.done, empty.outcomes, empty.finished) == (5, 0, 0, {}, False)

    leases = await store.lease_due_leads(campaign, 4, NOW)
    await store.finish_attempt(leases[0].attempt_id, outcome="answered", lead_state="done")
    await store.finish_attempt(leases[1].attempt_id, outcome="busy", lead_state="pending",
                               next_attempt_at=NOW + timedelta(minutes=5))
    await store.finish_attempt(leases[2].attempt_id, outcome="busy", lead_state="done")
    await store.lease_due_leads(other, 1, NOW)

    progress = await store.progress(campaign)
    assert (progress.pending, progress.leased, progress.done) == (2, 1, 2)
    assert progress.outcomes == {"answered": 1, "busy": 2}
    assert not progress.finished

    await store.finish_attempt(leases[3].attempt_id, outcome="rejected", lead_state="done")
    rest = await store.lease_due_leads(campaign, 10, NOW + timedelta(minutes=5))
    for lease in rest:
        await store.finish_attempt(lease.attempt_id, outcome="no_answer", lead_state="done")
    final = await store.progress(campaign)
    assert (final.pending, final.leased, final.done, final.finished) == (0, 0, 5, True)
    assert final.outcomes == {"answered": 1, "busy": 2, "rejected": 1, "no_answer": 2}
