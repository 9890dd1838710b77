"""EventWrites.final promises whoever queued a final row that it learns of it: `written`
once committed, `failed` if the write fails. The same attempt queued twice in one batch
(two writers, or one that queues again) must not leave the first one waiting for ever."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from dialer.leads.csv_import import LeadRow
from dialer.store.event_writes import EventWrites
from dialer.store.lead_outcomes import FinalRow
from dialer.store.store import Store

NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/twice.db")
    try:
        yield opened
    finally:
        await opened.close()


async def test_both_writers_of_the_same_final_row_in_one_batch_hear_of_it(store: Store) -> None:
    campaign_id = await store.sync_campaign("twice", "telemarketing")
    await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550001")])
    (lease,) = await store.lease_due_leads(campaign_id, 1, NOW)
    heard: list[str] = []

    def told(who: str):  # type: ignore[no-untyped-def]
        async def written(_step: object) -> None:
            heard.append(f"{who} written")

        return written

    writes = EventWrites(store)
    for who in ("first", "second"):
        writes.final(
            FinalRow(lease.attempt_id, "no-answer", NOW, {}, {}),
            written=told(who),
            failed=lambda who=who: heard.append(f"{who} failed"),
        )
    await writes.flush()
    assert sorted(heard) == ["first written", "second written"]
