"""The store on PostgreSQL where it differs from SQLite: several daemons (engines) leasing from
one database at once, and a URL's password kept out of errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from dialer.leads.csv_import import LeadRow
from dialer.store.store import Store, StoreError
from tests.postgres_server import PostgresServer, free_port

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
LOCK_WAIT_S = 5.0


@pytest.fixture
async def two_daemons(postgres_server: PostgresServer) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, each with its own engine and pool, as two daemons have."""
    url = postgres_server.database_url(migrated=True)
    first = await Store.open(url)
    second = await Store.open(url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
        postgres_server.release(url)


async def campaign_with(store: Store, count: int) -> int:
    campaign = await store.sync_campaign("renewals", "sales")
    await store.import_leads(campaign, [LeadRow(line=i + 2, phone=f"+1555{i:07d}") for i in range(count)])
    return campaign


async def test_a_lead_another_daemon_is_leasing_is_passed_over_without_waiting(two_daemons: tuple[Store, Store]) -> None:
    first, second = two_daemons
    campaign = await campaign_with(first, 10)
    async with first.engine.connect() as holder:
        # The first daemon is half-way through its lease: it holds the three leads it read.
        transaction = await holder.begin()
        held = set((await holder.execute(text("SELECT id FROM leads ORDER BY id LIMIT 3 FOR UPDATE"))).scalars())
        lease = asyncio.create_task(second.lease_due_leads(campaign, 10, NOW))
        done, _ = await asyncio.wait({lease}, timeout=LOCK_WAIT_S)
        await transaction.rollback()
        leases = await lease
    assert done, (
        f"the second daemon's lease waited over {LOCK_WAIT_S} s on leads the first had locked; "
        "lease_due_leads must read with FOR UPDATE SKIP LOCKED"
    )
    assert len(leases) == 7 and not held & {lease.lead_id for lease in leases}, (sorted(held), leases)


async def test_concurrent_leases_from_two_daemons_take_every_lead_once(two_daemons: tuple[Store, Store]) -> None:
    first, second = two_daemons
    campaign = await campaign_with(first, 200)
    batches = await asyncio.gather(
        *(store.lease_due_leads(campaign, 10, NOW) for _ in range(10) for store in (first, second))
    )
    lead_ids = [lease.lead_id for batch in batches for lease in batch]
    assert len(lead_ids) == len(set(lead_ids)), "a lead was leased twice"
    assert len(lead_ids) == 200, (
        f"20 concurrent leases of 10 took {len(lead_ids)} of 200 due leads ({[len(b) for b in batches]}): "
        "leases that read the same rows came back short instead of passing over the locked ones"
    )
    async with first.engine.connect() as conn:
        attempts = (await conn.execute(text("SELECT count(DISTINCT lead_id), count(*) FROM call_attempts"))).one()
        leased = (await conn.execute(text("SELECT count(*) FROM leads WHERE state = 'leased'"))).scalar()
    assert tuple(attempts) == (200, 200) and leased == 200


async def test_errors_never_show_the_urls_password(postgres_server: PostgresServer) -> None:
    for url in (
        f"postgresql+asyncpg://dialer:s3cret-pw@127.0.0.1:{postgres_server.port}/no_such_database",
        f"postgresql+asyncpg://dialer:s3cret-pw@127.0.0.1:{free_port()}/dialer",
    ):
        with pytest.raises(StoreError) as raised:
            await Store.open(url)
        assert "s3cret-pw" not in str(raised.value) and "***" in str(raised.value), str(raised.value)


async def test_an_unsupported_database_is_refused_by_name() -> None:
    with pytest.raises(StoreError, match="mysql is not a supported database"):
        await Store.open("mysql+aiomysql://dialer:s3cret-pw@127.0.0.1/dialer")


async def test_daemons_starting_together_share_the_campaign_and_agent_rows(two_daemons: tuple[Store, Store]) -> None:
    from types import SimpleNamespace

    first, second = two_daemons
    configured = [SimpleNamespace(id=f"agent{i}", name=None, interface=f"PJSIP/agent{i}") for i in range(5)]
    for _ in range(5):
        ids = await asyncio.gather(*(store.sync_campaign(f"c{n}", "sales") for n in range(4) for store in (first, second)))
        assert ids[0::2] == ids[1::2], "two daemons got different rows for one campaign"
        await asyncio.gather(*(store.sync_agents(configured, NOW) for store in (first, second)))
    async with first.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM campaigns"))).scalar() == 4
        assert (await conn.execute(text("SELECT count(*) FROM agents"))).scalar() == 5


async def test_a_restarted_database_server_costs_no_failed_write() -> None:
    """Connections pooled before the restart are dead; each is checked before use, so the first
    write after the server is back succeeds instead of failing once per stale connection."""
    server = PostgresServer()  # its own: the session's serves other tests
    try:
        await asyncio.to_thread(server.start)
        store = await Store.open(server.database_url(migrated=True))
        try:
            campaign = await campaign_with(store, 12)
            await asyncio.gather(*(store.lease_due_leads(campaign, 1, NOW) for _ in range(4)))  # several pooled
            await asyncio.to_thread(server.restart)
            for _ in range(4):
                assert len(await store.lease_due_leads(campaign, 1, NOW)) == 1
                assert (await store.progress(campaign)).leased >= 5
        finally:
            await store.close()
    finally:
        await asyncio.to_thread(server.stop)
