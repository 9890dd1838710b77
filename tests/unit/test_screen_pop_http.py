"""The screen pop over HTTP: `GET /agents/{id}/current` from the moment the agent's
phone rings, with the customer's tier, value, last contacts, open callbacks and the
campaign's script. A daemon with a real store and a fake AMI (ops_fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from ops_fixtures import TOKEN, close_daemon, open_daemon, write_config

from dialer.core import records as r
from dialer.daemon.server import Daemon
from dialer.http.app import build_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path, agents=[
        {"id": "kate", "interface": "PJSIP/kate", "queues": ["key-accounts"]},
        {"id": "gus", "interface": "PJSIP/gus", "queues": ["sales"]},
    ])
    (tmp_path / "campaigns" / "accounts.yaml").write_text(yaml.safe_dump({
        "name": "accounts",
        "type": "callback",
        "trunk": "PJSIP/{number}@carrier",
        "caller_id": "+15550100",
        "queue": "sales",
        "script": "Good morning, your account team calling about your renewal.",
        # Around the clock: the test must not depend on the hour CI runs at.
        "calling_hours": {"start": "00:00", "end": "24:00"},
        "tiers": {"routing": {"key": {"queue": "key-accounts", "priority": 10}}},
    }))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


async def test_the_agent_sees_who_is_calling_while_the_phone_rings(daemon: Daemon) -> None:
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as client:
        lead = {"phone": "+12025550176", "name": "Grace", "tier": "key", "value": "9000"}
        assert (await client.post("/campaigns/accounts/leads", headers=AUTH, json=lead)).status_code == 201
        assert daemon.store is not None
        runner = daemon.runners["accounts"]
        # An earlier call to Grace in this campaign, answered by gus.
        now = datetime.now(UTC)
        [earlier] = await daemon.store.lease_due_leads(runner.campaign_id, 1, now - timedelta(days=40))
        await daemon.store.finish_attempt(earlier.attempt_id, outcome="answered", lead_state="pending",
                                          agent_id="gus")
        for queue, agent in (("key-accounts", "PJSIP/kate"), ("sales", "PJSIP/gus")):
            daemon.board.apply(r.MemberStatus(at=0, queue=queue, interface=agent, status=1, paused=False,
                                              in_call=False))
        # Grace was last reached 40 days ago: the key tier's 30 days are over, she is dialed.
        await runner.tick(now.timestamp())
        await runner.wait_sends()
        (attempt,) = runner.attempts.values()
        originate = [a for a in daemon.ami.sent if a["Action"] == "Originate"][-1]  # type: ignore[attr-defined]
        assert (originate["variables"]["DIALER_QUEUE"], originate["variables"]["DIALER_TIER"]) == (
            "key-accounts", "key")

        ringing = r.AgentRinging(uniqueid=attempt.id, at=now.timestamp(), queue="key-accounts", interface="PJSIP/kate")
        daemon.board.apply(ringing)
        await runner.on_record(ringing)
        await runner.tiers.close()
        pop = (await client.get("/agents/kate/current", headers=AUTH)).json()["call"]["screen_pop"]
        assert pop["customer"]["name"] == "Grace"
        assert (pop["customer"]["tier"], pop["customer"]["value"]) == ("key", 9000.0)
        assert pop["routing"]["queue"] == "key-accounts"
        assert [(c["outcome"], c["agent"]) for c in pop["last_contacts"]] == [("answered", "gus")]
        assert pop["script"] == "Good morning, your account team calling about your renewal."
        assert pop["open_callbacks"] == []
        # And the same call announced to CTI integrations over AMI.
        (event,) = [a for a in daemon.ami.sent if a.get("UserEvent") == "DialerScreenPop"]  # type: ignore[attr-defined]
        assert (event["Agent"], event["Tier"], event["Name"], event["Value"]) == ("kate", "key", "Grace", "9000.0")
        # Nobody else's phone rings: their screen stays empty.
        assert (await client.get("/agents/gus/current", headers=AUTH)).json()["call"] is None
