"""Calls an earlier run left up in a campaign whose file was broken at the restart: the login's
reconciliation has no runner to adopt them and leaves them open; when the fixed file starts the
campaign, they are judged against the live channels (adopted, or closed if gone) instead of
holding their leads for ever."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.daemon.reconcile import Reconciler
from dialer.daemon.server import Daemon, Status
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store.schema import call_attempts, leads
from dialer.store.store import Store

STAYS, HANGS_UP = "+12125550001", "+12125550002"
AGENTS = {"agent1": "PJSIP/agent1", "agent2": "PJSIP/agent2"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/late.db")
    try:
        yield opened
    finally:
        await opened.close()


def campaign() -> Campaign:
    return Campaign(name="late", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                    queue="sales", dialing={"max_lines": 2},
                    # Around the clock: the test must not depend on the hour CI runs at.
                    calling_hours={"start": "00:00", "end": "24:00"})


async def until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


async def test_calls_left_open_for_want_of_a_runner_are_judged_when_the_campaign_starts(
    store: Store, tmp_path: Path
) -> None:
    pbx = SimulatedPbx(
        random.Random(0),
        {STAYS: Customer("answer", after=0.01, talk=600), HANGS_UP: Customer("answer", after=0.01, talk=1.0)},
    ).logged_in([("sales", interface, agent, 0) for agent, interface in AGENTS.items()])
    # The earlier run: both calls placed and bridged to an agent, then the daemon is gone.
    late = campaign()
    campaign_id = await store.sync_campaign(late.name, late.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=2, phone=STAYS), LeadRow(line=3, phone=HANGS_UP)])
    board = AgentBoard(AGENTS)
    for interface in AGENTS.values():
        board.apply(r.MemberStatus(at=0, queue="sales", interface=interface, status=1, paused=False, in_call=False))
    earlier = CampaignRunner(late, campaign_id, store, pbx, board, {}, clock=time.time)
    earlier.tiers.set_ladder(list(DEFAULT_TIERS))
    await earlier.tick(time.time())
    await earlier.wait_sends()
    ids = {a.phone: a.id for a in earlier.attempts.values()}
    assert set(ids) == {STAYS, HANGS_UP}
    await until(lambda: sum(len(b) for b in pbx.bridged.values()) == 2, "both calls bridged")

    # The restart, the campaign's file broken: no runner, so the login adopts nothing.
    config = tmp_path / "dialer.yaml"
    config.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/late.db'}}\n"
        "tick_interval: 0.01\n"
        "agents: [{id: agent1, interface: PJSIP/agent1, queues: [sales]}, "
        "{id: agent2, interface: PJSIP/agent2, queues: [sales]}]\n"
    )
    progress: list[Status] = []
    daemon = Daemon(load_config(config), {}, on_progress=progress.append)
    daemon.store = store
    daemon.ami = pbx
    daemon.reconciler = Reconciler(store, pbx, lambda: daemon.runners, time.time)
    assert (await daemon.reconciler.reconcile(time.time())).left_open == 2
    # Meanwhile one customer hangs up; the daemon, following neither call, sees nothing of it.
    deadline = time.monotonic() + 10
    while any(c.get("Linkedid") == ids[HANGS_UP] for c in await pbx.action({"Action": "CoreShowChannels"}, as_list=True)):
        assert time.monotonic() < deadline, "the short call never ended"
        await asyncio.sleep(0.05)

    # The file is fixed: the campaign starts; the main loop's next turn judges its left-over calls.
    runner = await daemon.apply_campaign(late)

    def stop(status: Status) -> None:
        progress.append(status)
        daemon.should_exit = True

    daemon.on_progress = stop
    await asyncio.wait_for(daemon.main_loop(), 10)

    assert ids[STAYS] in runner.attempts  # adopted: its runner follows it again
    async with store._read() as conn:
        attempts = {row.id: row for row in (await conn.execute(select(call_attempts))).all()}
        lead_rows = {row.phone: row for row in (await conn.execute(select(leads))).all()}
    assert attempts[ids[HANGS_UP]].state == "ended"
    assert lead_rows[HANGS_UP].lease_attempt_id is None and lead_rows[HANGS_UP].state != "leased"
    assert attempts[ids[STAYS]].state != "ended" and lead_rows[STAYS].lease_attempt_id == ids[STAYS]
