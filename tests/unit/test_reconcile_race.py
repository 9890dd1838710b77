"""A login's reconciliation and the calls a tick in flight places (a double dial).

A tick computes its `now`, then leases (the attempt rows are written, dialed at that
`now`), then sends the Originates. When the AMI connection is lost and logged in again
while the tick is between its lease and its Originates, those calls go out on the new
session: the reconciliation must not judge them by Asterisk's channel list (which does
not show them yet, or ever, before they are sent) and close them while they ring, or
their leads are due again with the calls up.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.daemon.reconcile import Reconciler
from dialer.daemon.server import Daemon
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import SimulatedPbx
from dialer.store.store import Store

NOW = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()  # a Tuesday afternoon in the US
PHONES = ["+12125550101", "+12125550102"]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/race.db")
    try:
        yield opened
    finally:
        await opened.close()


async def test_calls_a_tick_in_flight_sends_after_a_login_are_not_closed_by_its_reconciliation(
    store: Store, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    def clock() -> float:
        return NOW + loop.time() - started

    # Numbers not in the scenario ring until the Originate's timeout (60 s): up for the whole test.
    sim = SimulatedPbx(random.Random(0), {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])
    campaign = Campaign(name="race", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 5})
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(PHONES)])
    board = AgentBoard({"agent1": "PJSIP/agent1"})
    board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False, in_call=False))
    runner = CampaignRunner(campaign, campaign_id, store, sim, board, {"PJSIP/agent1": "agent1"}, clock=clock)
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    config = tmp_path / "dialer.yaml"
    config.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/race.db'}}\n"
        "tick_interval: 0.05\n"
        "agents: [{id: agent1, interface: PJSIP/agent1, queues: [sales]}]\n"
    )
    daemon = Daemon(load_config(config), {}, clock=clock)
    daemon.store = store
    daemon.ami = sim
    daemon.board = board
    daemon.runners = {campaign.name: runner}
    daemon.reconciler = Reconciler(store, sim, lambda: daemon.runners, clock)

    # The tick's lease is written, then the tick waits (a slow database) until `release`.
    leased = asyncio.Event()
    release = asyncio.Event()
    lease = store.lease_due_leads

    async def slow_lease(*args: Any, **kwargs: Any) -> Any:
        leases = await lease(*args, **kwargs)
        if leases and not leased.is_set():
            leased.set()
            await release.wait()
        return leases

    store.lease_due_leads = slow_lease  # type: ignore[method-assign]
    main = asyncio.create_task(daemon.main_loop())
    try:
        await asyncio.wait_for(leased.wait(), 10)
        await asyncio.sleep(0.3)  # the lease's `now` is well before the login
        # The connection drops and comes back while the tick is between its lease and its sends.
        sim.drop_connection()
        await sim.connect_once()
        login = asyncio.create_task(daemon._after_login())
        await asyncio.sleep(0.3)  # the login work goes as far as it goes without the tick
        release.set()
        await asyncio.wait_for(login, 10)
        await runner.wait_sends()
        await asyncio.sleep(0.3)  # a few more ticks
    finally:
        daemon.should_exit = True
        daemon._wake.set()
        await asyncio.wait_for(main, 10)

    dialed = [d.attempt_id for d in sim.dial_log]
    numbers = [d.number for d in sim.dial_log]
    assert numbers and len(set(numbers)) == len(numbers)  # each once
    async with store.engine.connect() as conn:
        rows = {a: (s, o) for a, s, o in await conn.execute(text("SELECT id, state, outcome FROM call_attempts"))}
        lead_states = {p: s for p, s in await conn.execute(text("SELECT phone, state FROM leads"))}
    # Their calls ring: followed by the runner, their rows open, their leads not due again.
    assert {a: rows[a] for a in dialed} == {a: ("dialing", None) for a in dialed}, rows
    assert set(dialed) <= set(runner.attempts)
    assert {p: lead_states[p] for p in numbers} == {p: "leased" for p in numbers}
