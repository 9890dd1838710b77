"""No SQL on ticks where nothing changed (issue 13): a campaign's progress is read again only
after this daemon wrote (or a slow safety interval, for other processes' writes), and the
webhook outbox is looked at when woken, when a retry falls due, or at the slow safety poll."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from dialer.daemon.server import _PROGRESS_REREAD, Daemon
from dialer.leads.csv_import import LeadRow
from dialer.store.store import Store
from dialer.webhook_dispatcher import WebhookDispatcher

NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def _statements(store: Store, table: str) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if table in statement:
            seen.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    return seen


async def test_a_campaigns_progress_is_read_again_only_after_a_write_or_the_safety_interval(store: Store) -> None:
    campaign_id = await store.sync_campaign("idle", "telemarketing")
    await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550001")])
    clock = [NOW]
    daemon = SimpleNamespace(store=store, monotonic_clock=lambda: clock[0], _progress_read={})
    reads = _statements(store, "GROUP BY leads.state")
    first = await Daemon._progress(daemon, campaign_id)  # type: ignore[arg-type]
    assert first.pending == 1 and len(reads) == 1
    for tick in range(1, 20):  # idle ticks, a second apart: nothing written, nothing read
        clock[0] = NOW + tick
        assert await Daemon._progress(daemon, campaign_id) == first  # type: ignore[arg-type]
    assert len(reads) == 1
    await store.import_leads(campaign_id, [LeadRow(line=3, phone="+12125550002")])  # a write of this process
    assert (await Daemon._progress(daemon, campaign_id)).pending == 2  # type: ignore[arg-type]
    assert len(reads) == 2
    clock[0] += _PROGRESS_REREAD  # another process may have written meanwhile
    await Daemon._progress(daemon, campaign_id)  # type: ignore[arg-type]
    assert len(reads) == 3


async def test_an_idle_outbox_is_not_polled_until_woken(store: Store) -> None:
    dispatcher = WebhookDispatcher(store, lambda: {}, poll_interval=0.01, idle_poll=60.0)
    looks = _statements(store, "FROM webhook_outbox")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.sleep(0.3)  # 30 polls at the old rate
        assert len(looks) == 1  # the look at start only
        dispatcher.wake()  # a disposition written by this process
        await asyncio.sleep(0.05)
        assert len(looks) == 2
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


async def test_the_outbox_is_looked_at_again_when_a_retry_falls_due_or_the_safety_poll_comes(store: Store) -> None:
    clock = [NOW]
    dispatcher = WebhookDispatcher(store, lambda: {}, clock=lambda: clock[0], idle_poll=30.0)
    await dispatcher.dispatch_due()  # nothing due
    assert dispatcher._next_look() == 30.0
    dispatcher._retries.append(NOW + 5)
    assert dispatcher._next_look() == 5.0
    clock[0] = NOW + 6  # that retry was looked for
    assert dispatcher._next_look() == 30.0
