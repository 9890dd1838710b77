"""A lead's tier is lead data: it reaches Asterisk made safe, it never stops the call.

An attack on the issue-11 hardening that held: a tier from a CSV (`Gold, VIP`,
`Premium (A)`, `Stammkunde\u2013A`) is kept by the intake but only a tier of the ladder
goes into the Originate's `DIALER_TIER`, so no comma or quote reaches Originate's
variable split, and the call is not refused for it. This guards that boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_ami_injection import WireAmi, settle

from dialer.ami.gateway import AmiGateway
from dialer.config.models import AmiServer, Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.leads.intake import LeadIntake
from dialer.store.store import Store


@pytest.fixture
async def wire() -> AsyncIterator[WireAmi]:
    server = WireAmi()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def gateway(wire: WireAmi) -> AsyncIterator[AmiGateway]:
    ami = AmiGateway(AmiServer(host="127.0.0.1", port=wire.port, username="dialer", secret="s", action_timeout=1.0))
    await ami.connect_once()
    try:
        yield ami
    finally:
        await ami.close()


@pytest.mark.parametrize("tier", ["gold", "Gold, VIP", "Premium (A)", "Stammkunde\u2013A", 'vip"x'])
async def test_a_lead_tier_with_odd_characters_is_dialed_with_it_made_safe(
    wire: WireAmi, gateway: AmiGateway, tmp_path: Path, tier: str
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/leads.db")
    try:
        campaign = Campaign(
            name="tiers", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
            queue="sales", numbers={"format": "as_is"}, retries={},
        )
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        row = LeadIntake.for_campaign(campaign, "US").check({"phone": "5551234", "tier": tier}, {})
        assert row.tier == tier.lower()  # the intake keeps it: it is the customer's data
        await store.import_leads(campaign_id, [row])
        board = AgentBoard({"agent1": "PJSIP/agent1"})
        board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False,
                                   in_call=False))
        now = datetime(2026, 6, 1, 15, 0, tzinfo=UTC).timestamp()
        runner = CampaignRunner(campaign, campaign_id, store, gateway, board, {"PJSIP/agent1": "agent1"},
                                clock=lambda: now)
        runner.tiers.set_ladder(list(DEFAULT_TIERS))
        runner.board_synced = True
        await runner.tick(now)
        await runner.wait_sends()
        await runner.tiers.close()
    finally:
        await store.close()
    assert await settle(wire, gateway) == ["Originate", "Ping"]
    lines = bytes(wire.raw).decode("utf-8").split("\r\n")
    (variable,) = [line for line in lines if line.startswith("Variable: DIALER_TIER=")]
    value = variable.split("=", 1)[1]
    assert value and all(c.isascii() and (c.isalnum() or c in "_.@+-") for c in value), value
