"""The runner on a database locked for a while: an attempt's final row is written before the
runner drops the attempt, and a lead leased by a tick that failed before dialing is given back;
what failed is tried again on the next tick, never lost."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

import dialer.daemon.campaign_runner as campaign_runner
from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import SETTLE_SECONDS
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import SimulatedPbx
from dialer.store.schema import call_attempts, leads
from dialer.store.store import Store, StoreError

NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _idle_runner(store: Store) -> CampaignRunner:
    campaign = Campaign(name="locked", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 1})
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550001")])
    board = AgentBoard({"agent1": "PJSIP/agent1"})
    board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False, in_call=False))
    pbx = SimulatedPbx(random.Random(0), {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])
    runner = CampaignRunner(campaign, campaign_id, store, pbx, board, {"PJSIP/agent1": "agent1"}, clock=lambda: NOW)
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    return runner


async def _runner(store: Store) -> CampaignRunner:
    runner = await _idle_runner(store)
    await runner.tick(NOW)
    await runner.wait_sends()
    assert len(runner.attempts) == 1
    return runner


async def _rows(store: Store, attempt_id: str) -> tuple[str, str]:
    async with store._read() as conn:
        attempt = (await conn.execute(select(call_attempts).where(call_attempts.c.id == attempt_id))).one()
        lead = (await conn.execute(select(leads).where(leads.c.id == attempt.lead_id))).one()
    return attempt.state, lead.state


async def test_a_final_write_that_fails_is_retried_on_the_next_tick(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await _runner(store)
    [attempt_id] = list(runner.attempts)
    written = campaign_runner.finish_with_rules
    failures = [StoreError("database is locked")]

    async def locked_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await written(*args, **kwargs)

    monkeypatch.setattr(campaign_runner, "finish_with_rules", locked_once)
    at = NOW + 1
    await runner.on_record(r.ChannelCreated(attempt_id, at, "PJSIP/carrier-00000001"))
    # Busy (cause 17): its outcome is known at the hang-up, so the hang-up itself settles it.
    with pytest.raises(StoreError):
        await runner.on_record(r.ChannelHangup(attempt_id, at + 2, 17, "User busy"))
    assert failures == []
    # Not dropped: the runner still holds it (decided, no longer live) and its row is open.
    assert attempt_id in runner.attempts and runner.live_counts().lines == 0
    state, status = await _rows(store, attempt_id)
    assert state != "ended" and status == "leased"
    await runner.tick(at + 2 + SETTLE_SECONDS + 1)
    assert attempt_id not in runner.attempts
    state, status = await _rows(store, attempt_id)
    assert state == "ended" and status != "leased"
    async with store._read() as conn:
        outcome = (await conn.execute(select(call_attempts.c.outcome).where(call_attempts.c.id == attempt_id))).scalar()
    assert outcome == "busy"


async def test_a_lead_leased_by_a_tick_that_fails_before_dialing_is_given_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await _idle_runner(store)
    screened = campaign_runner.screen_leases
    failures = [StoreError("database is locked")]

    async def locked_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await screened(*args, **kwargs)

    monkeypatch.setattr(campaign_runner, "screen_leases", locked_once)
    # The lease is written, the screening after it fails: nothing is dialed.
    with pytest.raises(StoreError):
        await runner.tick(NOW)
    assert failures == [] and runner.attempts == {} and runner.busy
    async with store._read() as conn:
        [attempt_id] = (await conn.execute(select(call_attempts.c.id))).scalars().all()
    assert await _rows(store, attempt_id) == ("dialing", "leased")
    runner.paused = True  # draining: only what is owed is done
    await runner.tick(NOW + 1)
    assert not runner.busy
    async with store._read() as conn:
        outcome = (await conn.execute(select(call_attempts.c.outcome).where(call_attempts.c.id == attempt_id))).scalar()
    assert await _rows(store, attempt_id) == ("ended", "pending") and outcome == "not_sent"
