"""The control API over a daemon with a real store on the simulated PBX."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialer.core import records as r
from dialer.core.attempt import Attempt
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.http.service import start_http
from ops_fixtures import TOKEN, campaign_yaml, close_daemon, open_daemon

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    from ops_fixtures import write_config

    write_config(tmp_path)
    (tmp_path / "campaigns" / "spring.yaml").write_text(campaign_yaml("spring"))
    (tmp_path / "campaigns" / "quiet.yaml").write_text(campaign_yaml("quiet", enabled=False))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as http:
        yield http


async def test_no_token_is_401_with_a_json_message(client: httpx.AsyncClient) -> None:
    missing = await client.get("/campaigns")
    assert missing.status_code == 401
    assert "token" in missing.json()["message"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await client.get("/campaigns", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "wrong token"


async def test_health_needs_no_token_and_readiness_follows_ami(client: httpx.AsyncClient, daemon: Daemon) -> None:
    assert (await client.get("/healthz")).json() == {"ok": True, "checks": {}}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"ami": "ok", "database": "ok"}
    assert daemon.ami is not None
    daemon.ami.connected.clear()
    down = await client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["ami"] == "not logged in"


async def test_unknown_things_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/campaigns/nope", "/agents/nobody", "/leads/12345", "/agents/nobody/current"):
        response = await client.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json()["message"]
    response = await client.post("/campaigns/nope/pause", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["message"] == "no campaign named 'nope'"


async def test_malformed_bodies_are_422_with_a_message(client: httpx.AsyncClient) -> None:
    bad_phone = await client.post("/campaigns/spring/leads", headers=AUTH, json={"phone": "call me"})
    assert bad_phone.status_code == 422
    body = bad_phone.json()
    assert body["message"].startswith("body.phone: String should match pattern")
    assert body["errors"][0]["field"] == "body.phone"
    not_json = await client.post(
        "/campaigns/spring/leads", headers={**AUTH, "Content-Type": "application/json"}, content=b"{phone"
    )
    assert not_json.status_code == 422
    assert not_json.json()["message"]
    extra = await client.post("/agents/agent1/pause", headers=AUTH, json={"paused": True, "colour": "red"})
    assert extra.status_code == 422
    assert "colour" in extra.json()["message"]
    zone = await client.post("/campaigns/spring/leads", headers=AUTH, json={"phone": "+12025550123", "timezone": "Mars/Base"})
    assert zone.status_code == 422
    assert zone.json()["message"].startswith("timezone: unknown time zone 'Mars/Base'")
    assert zone.json()["errors"][0]["field"] == "body.timezone"


async def test_campaign_controls(client: httpx.AsyncClient, daemon: Daemon) -> None:
    listed = (await client.get("/campaigns", headers=AUTH)).json()
    assert {c["name"]: c["state"] for c in listed} == {"quiet": "disabled", "spring": "running"}
    assert listed[1]["max_lines"] == 5 and listed[1]["file"].endswith("spring.yaml")
    runner = daemon.runners["spring"]

    async def post(action: str, name: str = "spring") -> httpx.Response:
        return await client.post(f"/campaigns/{name}/{action}", headers=AUTH)

    assert (await post("pause")).json() == {"name": "spring", "state": "paused"}
    assert runner.paused
    assert (await post("resume")).json()["state"] == "running"
    assert not runner.paused
    assert (await post("stop")).json()["state"] == "stopped"
    refused = await post("resume")
    assert refused.status_code == 409
    assert "start it instead" in refused.json()["message"]
    assert (await post("start")).json()["state"] == "running"
    disabled = await post("start", "quiet")
    assert disabled.status_code == 409
    assert "enabled: false" in disabled.json()["message"]
    status = (await client.get("/status", headers=AUTH)).json()
    assert status["ami_connected"] is True
    assert [c["state"] for c in status["campaigns"]] == ["disabled", "running"]


async def test_leads_added_and_looked_up(client: httpx.AsyncClient) -> None:
    lead = {"phone": "+12025550134", "name": "Ada", "tier": "Gold", "value": "1250.50", "data": {"plan": "b"}}
    added = await client.post("/campaigns/spring/leads", headers=AUTH, json=lead)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["added"] is True
    assert body["lead"]["tier"] == "gold" and body["lead"]["customer_name"] == "Ada"
    again = await client.post("/campaigns/spring/leads", headers=AUTH, json=lead)
    assert again.json()["added"] is False
    assert again.json()["lead"]["id"] == body["lead"]["id"]
    found = await client.get("/leads", params={"phone": "+12025550134"}, headers=AUTH)
    assert [x["id"] for x in found.json()] == [body["lead"]["id"]]
    by_id = await client.get(f"/leads/{body['lead']['id']}", headers=AUTH)
    assert by_id.json()["data"] == {"plan": "b"}
    disabled = await client.post("/campaigns/quiet/leads", headers=AUTH, json=lead)
    assert disabled.status_code == 409


async def test_agents_log_in_out_and_pause_through_ami(client: httpx.AsyncClient, daemon: Daemon) -> None:
    assert daemon.ami is not None
    agents = (await client.get("/agents", headers=AUTH)).json()
    assert [(a["id"], a["state"], a["configured_queues"]) for a in agents] == [
        ("agent1", "logged_out", ["sales"]),
        ("agent2", "logged_out", ["sales", "vip"]),
    ]
    await client.post("/agents/agent2/login", headers=AUTH)
    await client.post("/agents/agent2/logout", headers=AUTH, json={"queues": ["vip"]})
    await client.post("/agents/agent1/pause", headers=AUTH, json={"reason": "lunch"})
    sent = [(a["Action"], a.get("Queue"), a["Interface"]) for a in daemon.ami.sent]
    assert sent == [
        ("QueueAdd", "sales", "PJSIP/agent2"),
        ("QueueAdd", "vip", "PJSIP/agent2"),
        ("QueueRemove", "vip", "PJSIP/agent2"),
        ("QueuePause", None, "PJSIP/agent1"),
    ]
    assert daemon.ami.sent[-1]["Reason"] == "lunch" and daemon.ami.sent[-1]["Paused"] == "true"
    daemon.ami.connected.clear()
    offline = await client.post("/agents/agent1/login", headers=AUTH)
    assert offline.status_code == 503
    assert offline.json()["message"] == "not logged in to AMI right now"


async def test_pausing_an_agent_asterisk_has_in_no_queue_is_refused_not_unavailable(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    assert (await client.post("/agents/agent1/logout", headers=AUTH)).status_code == 200
    # Asterisk answers QueuePause with an error: the agent's state, not an AMI outage.
    refused = await client.post("/agents/agent1/pause", headers=AUTH, json={})
    assert refused.status_code == 409
    assert refused.json()["message"] == "AMI: QueuePause: Interface not found"


async def test_screen_pop_shows_the_agents_call_and_customer(client: httpx.AsyncClient, daemon: Daemon) -> None:
    lead = {"phone": "+12025550176", "name": "Grace", "tier": "platinum", "value": "9000"}
    await client.post("/campaigns/spring/leads", headers=AUTH, json=lead)
    assert (await client.get("/agents/agent1/current", headers=AUTH)).json() == {"agent": "agent1", "call": None}
    assert daemon.store is not None
    runner = daemon.runners["spring"]
    [lease] = await daemon.store.lease_due_leads(runner.campaign_id, 1, __import__("datetime").datetime.now())
    attempt = Attempt(id=lease.attempt_id, lead_id=lease.lead_id, phone=lease.phone, queue="sales", dialed_at=100.0, ring_timeout=20)
    runner.attempts[attempt.id] = attempt
    attempt.apply(r.AgentConnected(uniqueid=attempt.id, queue="sales", interface="PJSIP/agent1", at=105.0))
    daemon.board.apply(r.MemberStatus(queue="sales", interface="PJSIP/agent1", status=1, paused=False, in_call=False, at=101.0))
    daemon.board.apply(r.AgentConnected(uniqueid=attempt.id, queue="sales", interface="PJSIP/agent1", at=105.0))
    pop = (await client.get("/agents/agent1/current", headers=AUTH)).json()
    call = pop["call"]
    assert (call["attempt"], call["campaign"], call["number"], call["state"]) == (attempt.id, "spring", "+12025550176", "bridged")
    assert (call["lead"]["customer_name"], call["lead"]["tier"], call["lead"]["value"]) == ("Grace", "platinum", 9000.0)
    assert [c["attempt"] for c in call["lead"]["last_contacts"]] == [attempt.id]


async def test_metrics_parse_and_count_calls_by_outcome(client: httpx.AsyncClient, daemon: Daemon) -> None:
    for phone in ("+12025550101", "+12025550102"):
        await client.post("/campaigns/spring/leads", headers=AUTH, json={"phone": phone, "tier": "gold"})
    assert daemon.store is not None
    runner = daemon.runners["spring"]
    from datetime import datetime

    leases = await daemon.store.lease_due_leads(runner.campaign_id, 2, datetime.now())
    await daemon.store.finish_attempt(leases[0].attempt_id, outcome="busy", lead_state="done")
    text = (await client.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("dialer_calls_placed_total", (("campaign", "spring"), ("tier", "gold")))] == 2
    assert samples[("dialer_calls_total", (("campaign", "spring"), ("outcome", "busy"), ("tier", "gold")))] == 1
    assert samples[("dialer_agents", (("state", "logged_out"),))] == 2
    assert samples[("dialer_campaign_state", (("campaign", "quiet"), ("state", "disabled")))] == 1
    assert samples[("dialer_ami_connected", ())] == 1
    # The store's writes above went through the commit hook.
    assert samples[("dialer_db_write_seconds_count", ())] >= 3


@pytest.mark.timeout(120)
async def test_schemathesis_finds_no_server_error(daemon: Daemon, tmp_path: Path) -> None:
    daemon.http = await start_http(daemon)
    url = f"http://127.0.0.1:{daemon.http.port}"
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--max-examples",
        "10",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "8",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 100)
    text = output.decode()
    assert process.returncode == 0, text[-6000:]


async def test_dispositions_and_callbacks(client: httpx.AsyncClient, daemon: Daemon) -> None:
    from datetime import datetime, timedelta, timezone

    await client.post("/campaigns/spring/leads", headers=AUTH, json={"phone": "+12025550121"})
    assert daemon.store is not None
    runner = daemon.runners["spring"]
    [lease] = await daemon.store.lease_due_leads(runner.campaign_id, 1, datetime.now())
    await daemon.store.finish_attempt(lease.attempt_id, outcome="answered", lead_state="done")
    unknown = await client.post("/dispositions", headers=AUTH, json={"attempt_id": "ab" * 16, "code": "sale"})
    assert unknown.status_code == 422
    assert unknown.json()["message"]
    due = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    done = await client.post(
        "/dispositions",
        headers=AUTH,
        json={"attempt_id": lease.attempt_id, "code": "callback", "callback_at": due.isoformat(), "agent": "agent1"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["action"] == "callback" and done.json()["callback_id"]
    listed = (await client.get("/callbacks", headers=AUTH, params={"campaign": "spring"})).json()
    assert [(c["lead_id"], c["state"]) for c in listed] == [(lease.lead_id, "scheduled")]
