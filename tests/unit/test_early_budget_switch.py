"""`dialing.early_budget`: on (the default), the runner tells the pacing how many leads are
left, so a young abandon window may spend what they will earn; off, it never counts them and
the campaign keeps the old gate (dialer.core.abandon: progressive until one abandon fits)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import SimulatedPbx
from dialer.store.store import Store

NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/early.db")
    try:
        yield opened
    finally:
        await opened.close()


async def _runner(store: Store, **dialing: object) -> CampaignRunner:
    campaign = Campaign(name="early", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"mode": "predictive", "max_lines": 2, **dialing})
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=i, phone=f"+1212555{i:04d}") for i in range(2, 52)])
    board = AgentBoard({"agent1": "PJSIP/agent1"})
    board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False, in_call=False))
    pbx = SimulatedPbx(random.Random(0), {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])
    runner = CampaignRunner(campaign, campaign_id, store, pbx, board, {"PJSIP/agent1": "agent1"}, clock=lambda: NOW)
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    return runner


async def test_the_leads_left_are_told_to_the_pacing_by_default(store: Store) -> None:
    runner = await _runner(store)
    await runner.tick(NOW)
    await runner.wait_sends()
    # 50 leads counted before this tick's calls, each placed call taken off.
    assert runner.core.leads_left == 50 - len(runner.attempts)


async def test_with_early_budget_off_the_leads_are_never_counted(store: Store) -> None:
    runner = await _runner(store, early_budget=False)
    for step in range(3):
        await runner.tick(NOW + 61 * step)
        await runner.wait_sends()
    assert runner.core.leads_left is None
