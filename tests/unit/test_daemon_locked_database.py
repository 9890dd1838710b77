"""A database locked for a while never ends the daemon nor loses what it owes: the main loop's
progress step, like its ticks, logs the failure and goes on to the next turn, and a login's
reconciliation that failed is done again on a later turn."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
import dialer.daemon.reconcile as reconcile
from dialer.daemon.reconcile import Reconciler
from dialer.daemon.server import Daemon, Status
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import SimulatedPbx
from dialer.store.schema import call_attempts, leads
from dialer.store.store import Store, StoreError

NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/locked.db")
    try:
        yield opened
    finally:
        await opened.close()


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "dialer.yaml"
    config.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/locked.db'}}\n"
        "tick_interval: 0.01\n"
        "agents: [{id: agent1, interface: PJSIP/agent1, queues: [sales]}]\n"
    )
    return config


async def test_a_locked_database_while_reading_the_progress_does_not_end_the_main_loop(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    turns = iter(range(1_000_000))
    # One second a turn: every turn is due to report progress.
    clock = lambda: NOW + next(turns)  # noqa: E731
    progress: list[Status] = []
    daemon = Daemon(load_config(config), {}, clock=clock, on_progress=progress.append)
    campaign = Campaign(name="locked", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales")
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    board = AgentBoard({"agent1": "PJSIP/agent1"})
    board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False, in_call=False))
    pbx = SimulatedPbx(random.Random(0), {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])
    runner = CampaignRunner(campaign, campaign_id, store, pbx, board, {"PJSIP/agent1": "agent1"}, clock=clock)
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    daemon.store = store
    daemon.ami = pbx
    daemon.runners = {campaign.name: runner}

    read = store.progress
    locked = [StoreError("database is locked")] * 3

    async def progress_while_locked(*args: Any, **kwargs: Any) -> Any:
        if locked:
            raise locked.pop()
        daemon.should_exit = True  # read at last: the loop has lived through the lock
        return await read(*args, **kwargs)

    monkeypatch.setattr(store, "progress", progress_while_locked)
    await asyncio.wait_for(daemon.main_loop(), 10)
    assert locked == []
    assert [c.name for c in progress[-1].campaigns] == ["locked"]


async def test_a_login_whose_reconciliation_failed_has_it_done_again_by_the_main_loop(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = Campaign(name="locked", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales")
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550001")])
    # A call of an earlier run, its end lost with that run: open, its lead leased, no channel up.
    now = datetime.now(UTC)
    [lease] = await store.lease_due_leads(campaign_id, 1, now)
    pbx = SimulatedPbx(random.Random(0), {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])
    progress: list[Status] = []
    daemon = Daemon(load_config(_config(tmp_path)), {}, on_progress=progress.append)
    daemon.store = store
    daemon.ami = pbx
    daemon.reconciler = Reconciler(store, pbx, lambda: daemon.runners, daemon.clock)
    board = AgentBoard({"agent1": "PJSIP/agent1"})
    runner = CampaignRunner(campaign, campaign_id, store, pbx, board, {"PJSIP/agent1": "agent1"}, clock=daemon.clock)
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    runner.paused = True  # nothing new is dialed: only the earlier call is judged
    daemon.runners = {campaign.name: runner}

    read = reconcile.open_attempts
    locked = [StoreError("database is locked")]

    async def open_attempts_while_locked(*args: Any, **kwargs: Any) -> Any:
        if locked:
            raise locked.pop()
        return await read(*args, **kwargs)

    monkeypatch.setattr(reconcile, "open_attempts", open_attempts_while_locked)
    await daemon._after_login()  # logged, not raised: the login itself stands
    assert locked == []

    def stop(status: Status) -> None:
        progress.append(status)
        daemon.should_exit = True

    daemon.on_progress = stop
    await asyncio.wait_for(daemon.main_loop(), 10)
    async with store._read() as conn:
        state = (await conn.execute(select(call_attempts.c.state).where(call_attempts.c.id == lease.attempt_id))).scalar()
        lead = (await conn.execute(select(leads.c.state, leads.c.lease_attempt_id))).one()
    assert state == "ended"
    assert lead.lease_attempt_id is None and lead.state != "leased"
