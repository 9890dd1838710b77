"""Nothing bound for AMI can add headers or actions (issue 11, items 1 and 2).

A fake AMI server records the raw bytes the real `AmiGateway` writes, so the
tests see exactly what reached the socket: a refused action must leave no byte,
and lead data (a customer's name, a CRM id) must reach Asterisk only made safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dialer.ami.errors import AmiError
from dialer.ami.gateway import AmiGateway
from dialer.config.models import AmiServer, Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.leads.csv_import import LeadRow
from dialer.store.store import Store

INJECTED = "sales\r\nAction: Originate\r\nChannel: Local/s@x\r\nApplication: System\r\nData: touch /tmp/owned"


class WireAmi:
    """Answers every action with Success and keeps every byte it was sent."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                try:
                    block = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.raw += block
                action_id = next(
                    (line.split(b": ", 1)[1] for line in block.split(b"\r\n") if line.lower().startswith(b"actionid: ")),
                    b"",
                )
                writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\nMessage: ok\r\n\r\n")
        finally:
            writer.close()

    def actions(self) -> list[str]:
        """The `Action:` of every block written to the socket, in order (Login excluded)."""
        found = []
        for line in bytes(self.raw).split(b"\r\n"):
            if line.lower().startswith(b"action:"):
                found.append(line.split(b":", 1)[1].strip().decode())
        return [a for a in found if a.lower() != "login"]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


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
    ami = AmiGateway(
        AmiServer(host="127.0.0.1", port=wire.port, username="dialer", secret="s", action_timeout=1.0)
    )
    await ami.connect_once()
    try:
        yield ami
    finally:
        await ami.close()


async def settle(wire: WireAmi, gateway: AmiGateway) -> list[str]:
    """Send a Ping as a marker and return every action the socket carried."""
    await gateway.action({"Action": "Ping"})
    return wire.actions()


@pytest.mark.parametrize(
    "fields",
    [
        {"Action": "QueueAdd", "Queue": INJECTED, "Interface": "PJSIP/agent1"},
        {"Action": "QueueAdd", "Queue": "sales\nAction: Command\nCommand: core stop now", "Interface": "PJSIP/a"},
        {"Action": "QueueRemove", "Queue": "sales\rAction: Command", "Interface": "PJSIP/agent1"},
        {"Action": "QueuePause", "Interface": "PJSIP/agent1\x00", "Paused": "true"},
        {"Action": "UserEvent", "UserEvent": "X", "Name": "Eve\x1b[2J"},
        {"Action": "Originate", "Channel": "PJSIP/1@c", "Variable": ["A=1", "B=2\r\nAction: Command"]},
        {"Action": "UserEvent", "UserEvent": "X", "Bad\r\nAction: Command": "1"},
        {"Action": "UserEvent", "UserEvent": "X", "Name": "Eve\x85Action: Command"},
        {"Action": "UserEvent", "UserEvent": "X", "Name": "Eve\u2028Action: Command"},
    ],
    ids=["crlf", "lf", "cr", "nul", "escape", "variable-item", "header-name", "c1-next-line", "line-separator"],
)
async def test_the_gateway_refuses_an_unsafe_header_and_writes_nothing(
    wire: WireAmi, gateway: AmiGateway, fields: dict[str, Any]
) -> None:
    with pytest.raises(AmiError) as refused:
        await gateway.action(fields)
    assert "refused before sending" in str(refused.value)
    # Only the marker reached the socket: no part of the refused action, no injected one.
    assert await settle(wire, gateway) == ["Ping"]
    assert b"Command" not in wire.raw and b"System" not in wire.raw


async def test_originate_refuses_a_variable_value_that_would_split(wire: WireAmi, gateway: AmiGateway) -> None:
    with pytest.raises(AmiError) as refused:
        await gateway.originate(
            attempt_id="a1", channel="PJSIP/5551234@carrier", context="dialer-outbound", exten="answered",
            timeout_ms=25000, caller_id="+15550100",
            variables={"DIALER_CUSTOMER": "x,DIALER_QUEUE=vip"},
        )
    assert "refused before sending" in str(refused.value)
    assert await settle(wire, gateway) == ["Ping"]


@pytest.mark.parametrize("number", ["5551234&PJSIP/5559999", "5551234,tT", "555 1234"])
async def test_originate_refuses_a_channel_that_is_not_one_channel(
    wire: WireAmi, gateway: AmiGateway, number: str
) -> None:
    with pytest.raises(AmiError) as refused:
        await gateway.originate(
            attempt_id="a1", channel=f"PJSIP/{number}@carrier", context="dialer-outbound", exten="answered",
            timeout_ms=25000, caller_id="+15550100", variables={},
        )
    assert "refused before sending" in str(refused.value)
    assert await settle(wire, gateway) == ["Ping"]


async def test_a_clean_originate_goes_out_whole(wire: WireAmi, gateway: AmiGateway) -> None:
    await gateway.originate(
        attempt_id="a1", channel="PJSIP/5551234@carrier", context="dialer-outbound", exten="answered",
        timeout_ms=25000, caller_id='"Acme Ltd" <+15550100>',
        variables={"DIALER_QUEUE": "sales", "DIALER_ABANDON_MSG": "/var/lib/dialer/sounds/tts-1a2b",
                   "DIALER_AMD_PARAMS": "^2500^^", "DIALER_AGENT": "PJSIP/agent2"},
    )
    assert await settle(wire, gateway) == ["Originate", "Ping"]
    assert b"Variable: DIALER_AMD_PARAMS=^2500^^\r\n" in wire.raw


async def test_hostile_lead_data_reaches_ami_only_made_safe(wire: WireAmi, gateway: AmiGateway, tmp_path: Path) -> None:
    """A name and CRM id holding CR LF, NUL, commas and accents: the call still goes
    out, with exactly one Originate and one screen-pop UserEvent on the wire."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/leads.db")
    try:
        campaign = Campaign(
            name="hostile", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
            queue="sales", numbers={"format": "as_is"}, retries={},
        )
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        # Stored as a CRM or an old import may have left them: the dial path must cope.
        await store.import_leads(campaign_id, [LeadRow(
            line=2, phone="5551234", name="Jos\u00e9\r\nAction: Command\r\nCommand: core stop now\x00",
            customer_id="C1,DIALER_QUEUE=vip\r\nAction: Command", tier=None, value=None,
        )])
        board = AgentBoard({"agent1": "PJSIP/agent1"})
        board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False,
                                   in_call=False))
        now = datetime(2026, 6, 1, 15, 0, tzinfo=UTC).timestamp()
        runner = CampaignRunner(campaign, campaign_id, store, gateway, board, {"PJSIP/agent1": "agent1"},
                                clock=lambda: now)
        runner.tiers.set_ladder(list(DEFAULT_TIERS))
        await runner.tick(now)
        await runner.wait_sends()
        (attempt_id,) = runner.attempts
        await runner.on_record(r.AgentRinging(uniqueid=attempt_id, at=now, queue="sales", interface="PJSIP/agent1"))
        await runner.tiers.close()
    finally:
        await store.close()
    assert await settle(wire, gateway) == ["Originate", "UserEvent", "Ping"]
    lines = bytes(wire.raw).decode("utf-8").split("\r\n")
    assert not any(line.startswith(("Command", "Application")) for line in lines)
    assert "Name: Jos\u00e9  Action: Command  Command: core stop now " in lines
    (customer,) = [line for line in lines if line.startswith("Variable: DIALER_CUSTOMER=")]
    assert "," not in customer and customer.startswith("Variable: DIALER_CUSTOMER=C1_DIALER_QUEUE_vip")
