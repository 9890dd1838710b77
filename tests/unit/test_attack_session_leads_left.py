"""The leads left that a young abandon window counts on (Store.leads_to_dial, at start and
once a minute) bring answers only if they will be dialed: a lead whose number is on a
do-not-call list is closed at its lease, never dialed. After a big import and a DNC
purge, counting such leads promises answers that never come, and the young window's
budget spends abandons against them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from dialer.leads.csv_import import LeadRow
from dialer.store import dnc
from dialer.store.schema import GLOBAL_DNC
from dialer.store.store import Store

NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_leads_on_a_do_not_call_list_are_not_counted_as_leads_to_dial(store: Store) -> None:
    campaign_id = await store.sync_campaign("purged", "outbound")
    phones = [f"+1212555{n:04d}" for n in range(100)]
    await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    assert await store.leads_to_dial(campaign_id) == 100
    # The purge: 90 on the global list, the rest but one on the campaign's own.
    await dnc.add_numbers(store, phones[:90], scope=GLOBAL_DNC, source="purge", now=NOW)
    await dnc.add_numbers(store, phones[90:99], scope="purged", source="purge", now=NOW)
    assert await store.leads_to_dial(campaign_id) == 1
