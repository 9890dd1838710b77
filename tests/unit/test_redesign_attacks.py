"""Attacks on the issue-12 redesign: behaviour a user would lose."""

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


@pytest.mark.parametrize(
    ("refusal", "writer"),
    [("Originate failed", "finish_with_rules"), ("Asterisk is shutting down", "not_sent")],
)
async def test_a_refused_originate_whose_final_write_fails_is_not_lost(
    store: Store, monkeypatch: pytest.MonkeyPatch, refusal: str, writer: str
) -> None:
    """An Originate refused while the database is locked: the runner dropped the
    attempt before writing its `refused` (or `not_sent`) row, so the write was never
    tried again, the row stayed open and the lead leased until the next login."""
    campaign = Campaign(name="refused", type="telemarketing", trunk="PJSIP/{number}@carrier",
                        caller_id="+15550100", queue="sales", dialing={"max_lines": 1})
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550001")])
    board = AgentBoard({"agent1": "PJSIP/agent1"})
    board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False, in_call=False))
    pbx = SimulatedPbx(random.Random(0), {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])
    pbx.refusal = lambda _number: refusal if not refused else None
    refused: list[str] = []
    clock = [NOW]
    runner = CampaignRunner(campaign, campaign_id, store, pbx, board, {"PJSIP/agent1": "agent1"},
                            clock=lambda: clock[0])
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    written = getattr(campaign_runner, writer)
    failures = [StoreError("database is locked")]

    async def locked_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            refused.append(failures.pop().args[0])
            raise StoreError(refused[-1])
        return await written(*args, **kwargs)

    monkeypatch.setattr(campaign_runner, writer, locked_once)
    await runner.tick(NOW)
    await runner.wait_sends()
    assert failures == [] and pbx.counters["originates_refused"] == 1
    async with store._read() as conn:
        [attempt_id] = (await conn.execute(select(call_attempts.c.id))).scalars().all()
    # The database is back: the next ticks must end the attempt and free its lead.
    for step in range(1, 4):
        clock[0] = NOW + step * (SETTLE_SECONDS + 1)
        await runner.tick(clock[0])
        await runner.wait_sends()
    async with store._read() as conn:
        attempt = (await conn.execute(select(call_attempts).where(call_attempts.c.id == attempt_id))).one()
        lead = (await conn.execute(select(leads).where(leads.c.id == attempt.lead_id))).one()
    assert attempt.state == "ended", f"attempt row left {attempt.state!r}, lead {lead.state!r}"
    # A not_sent lead is due again at once: the next ticks may lease it for a new
    # call, never keep it leased by the lost attempt.
    assert lead.state != "leased" or lead.lease_attempt_id != attempt_id


async def test_a_callback_booked_while_the_call_is_up_does_not_dial_the_customer_again_during_it(
    store: Store,
) -> None:
    """The agent books a callback a minute ahead while still talking to the customer
    (dispositions may come while the call is up): the lead is pending and due in a
    minute with its call still up, and nothing keeps the runner from dialing the
    customer a second time while they are on the phone with the agent."""
    from dialer.dispositions import apply_disposition

    campaign = Campaign(name="cb", type="telemarketing", trunk="PJSIP/{number}@carrier",
                        caller_id="+15550100", queue="sales", dialing={"max_lines": 2})
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550001")])
    board = AgentBoard({"agent1": "PJSIP/agent1", "agent2": "PJSIP/agent2"})
    for name in ("agent1", "agent2"):
        board.apply(r.MemberStatus(at=0, queue="sales", interface=f"PJSIP/{name}", status=1, paused=False,
                                   in_call=False))
    pbx = SimulatedPbx(random.Random(0), {}).logged_in(
        [("sales", "PJSIP/agent1", "agent1", 0), ("sales", "PJSIP/agent2", "agent2", 0)]
    )
    clock = [NOW]
    runner = CampaignRunner(campaign, campaign_id, store, pbx, board,
                            {"PJSIP/agent1": "agent1", "PJSIP/agent2": "agent2"}, clock=lambda: clock[0])
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    await runner.tick(NOW)
    await runner.wait_sends()
    [attempt_id] = list(runner.attempts)
    await runner.on_record(r.ChannelCreated(attempt_id, NOW + 1, "PJSIP/carrier-00000001"))
    await runner.on_record(r.ChannelState(attempt_id, NOW + 5, 6))
    await runner.on_record(r.QueueJoined(attempt_id, NOW + 5, "sales"))
    await runner.on_record(r.AgentConnected(attempt_id, NOW + 6, "sales", "PJSIP/agent1"))
    board.apply(r.MemberStatus(at=NOW + 6, queue="sales", interface="PJSIP/agent1", status=2, paused=False,
                               in_call=True))
    await apply_disposition(store, {"cb": campaign}, code="callback", attempt_id=attempt_id,
                            now=datetime.fromtimestamp(NOW + 30, UTC),
                            callback_at=datetime.fromtimestamp(NOW + 90, UTC))
    # Five minutes on (past the callback agent_grace), the customer is still talking
    # to agent1; agent2 is free.
    for step in range(60, 361, 30):
        clock[0] = NOW + step
        await runner.tick(clock[0])
        await runner.wait_sends()
    async with store._read() as conn:
        dialed = (await conn.execute(select(call_attempts.c.id))).scalars().all()
    assert attempt_id in runner.attempts  # still bridged to agent1
    assert dialed == [attempt_id], f"the customer was dialed again during their call: {len(dialed)} attempts"
