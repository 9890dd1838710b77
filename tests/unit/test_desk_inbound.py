"""Inbound callbacks on the agent desk (issues 14 and 15 meet): a customer calling the
campaign's number pops on the ringing agent's page as an outbound call does, marked as
a callback; its disposition goes to the caller's lead (with the campaign's webhook row);
an unknown caller gets their number only and no disposition. A real store, a fake AMI,
the daemon's own HTTP server, and inbound calls routed through the FastAGI route."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from ops_fixtures import TOKEN, close_daemon, open_daemon, write_config
from sqlalchemy import select
from test_desk_http import SECRETS, Feed, base, feed, sign_in
from test_inbound import agi

from dialer.core import records as r
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.http.desk_auth import Role, set_user
from dialer.http.service import HttpService
from dialer.inbound.service import InboundService
from dialer.store.schema import webhook_outbox

SECRET_ENV = "DIALER_TEST_DESK_INBOUND_SECRET"
CALLER = "+12025550176"
NAME = '<b onmouseover="x()">Grace</b>'
OTHER = "Someone Else Entirely"
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "s3cret-for-the-desk-inbound-test")


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["http"]["desk_users_file"] = "desk-users.yaml"
    path.write_text(yaml.safe_dump(config))
    users = tmp_path / "desk-users.yaml"
    set_user(users, "agent1", Role.agent, SECRETS["agent1"])
    set_user(users, "agent2", Role.agent, SECRETS["agent2"])
    (tmp_path / "campaigns" / "sales.yaml").write_text(yaml.safe_dump({
        "name": "sales", "type": "telemarketing", "trunk": "PJSIP/{number}@carrier",
        "caller_id": '"Acme" <+15550100>', "queue": "sales", "wrapup_limit": 600,
        "calling_hours": {"start": "09:00", "end": "18:00", "timezone": "America/New_York"},
        "dispositions": {"sale": "close", "call_back": "callback", "not_interested": "close"},
        "inbound": {"dids": ["+15550199"], "max_wait": 45},
        "webhooks": [{"name": "crm", "url": "https://crm.example/hooks", "dispositions": ["sale"],
                      "secret_env": SECRET_ENV}],
    }))
    handle = await open_daemon(tmp_path)
    assert handle.desk is not None and handle.store is not None
    handle.inbound = InboundService(
        handle.store, handle.board, lambda: [x.campaign for x in handle.runners.values()],
        tiers=handle.config.tiers, agent_ids={a.interface: a.id for a in handle.config.agents}, ami=handle.ami,
    )
    handle.http = HttpService(build_app(handle), "127.0.0.1", 0)
    await handle.http.start()
    try:
        yield handle
    finally:
        await handle.desk.close()
        await handle.inbound.close()
        await close_daemon(handle)


async def add_leads(client: httpx.AsyncClient) -> None:
    for lead in ({"phone": CALLER, "name": NAME, "tier": "gold", "value": "1200", "customer_id": "AC-7"},
                 {"phone": "+12025550111", "name": OTHER, "customer_id": "AC-8"}):
        reply = await client.post("/campaigns/sales/leads", headers={"Authorization": f"Bearer {TOKEN}"},
                                  json=lead)
        assert reply.status_code == 201, reply.text


async def abandoned(daemon: Daemon) -> str:
    """The caller's lead was dialled and the call abandoned: the one they call back."""
    assert daemon.store is not None
    runner = daemon.runners["sales"]
    leases = await daemon.store.lease_due_leads(runner.campaign_id, 2, datetime.now(UTC))
    for lease in leases:
        await daemon.store.finish_attempt(lease.attempt_id, outcome="abandoned", lead_state="pending",
                                          next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
    found = await daemon.store.find_leads(phone=CALLER)
    return next(lease.attempt_id for lease in leases if lease.lead_id == found[0]["id"])


async def ring_inbound(daemon: Daemon, caller: str | None, uniqueid: str) -> tuple[str, float]:
    """The customer dials the campaign's number: routed by the FastAGI route, then agent 1's phone rings."""
    assert daemon.inbound is not None
    for agent in ("PJSIP/agent1", "PJSIP/agent2"):
        feed(daemon, r.MemberStatus(at=time.time(), queue="sales", interface=agent, status=1, paused=False,
                                    in_call=False))
    line = agi(caller, did="15550100", uniqueid=uniqueid)
    await daemon.inbound.agi_route(line)
    call_id = line.variables()["DIALER_INBOUND_ID"]
    rang = time.time()
    ringing = r.AgentRinging(uniqueid=uniqueid, at=rang, queue="sales", interface="PJSIP/agent1")
    feed(daemon, ringing)  # the daemon's event consumer: the board and the desk first ...
    await daemon.inbound.on_record(ringing)  # ... then the inbound call's own handling
    return call_id, rang


async def answer_and_hang_up(daemon: Daemon, uniqueid: str, rang: float) -> None:
    assert daemon.inbound is not None
    connected = r.AgentConnected(uniqueid=uniqueid, at=rang + 1, queue="sales", interface="PJSIP/agent1")
    feed(daemon, connected)
    await daemon.inbound.on_record(connected)
    feed(daemon, r.AgentCompleted(uniqueid=uniqueid, at=rang + 30, queue="sales", interface="PJSIP/agent1",
                                  talk_time=29.0))
    await daemon.inbound.on_record(r.ChannelHangup(uniqueid=uniqueid, at=rang + 30, cause=16, cause_text="Normal"))
    await asyncio.sleep(0.1)  # the wrap-up's QueuePause


async def outbox(daemon: Daemon) -> list[dict[str, Any]]:
    assert daemon.store is not None
    async with daemon.store.engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(select(webhook_outbox))).mappings()]


async def test_a_known_caller_pops_on_the_ringing_agents_page_and_the_disposition_goes_to_their_lead(
    daemon: Daemon,
) -> None:
    async with (
        httpx.AsyncClient(base_url=base(daemon), timeout=10) as one,
        httpx.AsyncClient(base_url=base(daemon), timeout=10) as two,
    ):
        await add_leads(one)
        missed = await abandoned(daemon)
        csrf = await sign_in(one, "agent1")
        csrf_two = await sign_in(two, "agent2")
        async with one.stream("GET", "/desk/agent/events") as mine_response, two.stream(
            "GET", "/desk/agent/events"
        ) as theirs_response:
            mine, theirs = Feed(mine_response), Feed(theirs_response)
            try:
                await mine.until("event: pop")
                await theirs.until("event: pop")
                call_id, rang = await ring_inbound(daemon, "12025550176", "1796046000.1")
                seen = await mine.until("Grace")
                assert "&lt;b onmouseover=&#34;x()&#34;&gt;Grace&lt;/b&gt;" in seen and "<b onmouseover" not in seen
                await mine.until("id=\"inbound-callback\"")
                assert "was abandoned" in mine.text and OTHER not in mine.text
                with pytest.raises(asyncio.TimeoutError):
                    await theirs.until("Grace", timeout=1.0)
            finally:
                await mine.close()
                await theirs.close()
        assert "Grace" not in (await two.get("/desk/agent")).text
        assert (await two.get("/desk/api/me")).json()["call"] is None
        me = (await one.get("/desk/api/me")).json()
        assert (me["state"], me["call"]["attempt"], me["call"]["campaign"]) == ("ringing", call_id, "sales")
        assert me["call"]["screen_pop"]["customer"]["name"] == NAME
        assert me["call"]["inbound"] == {"caller": "12025550176", "known": True, "answers_attempt": missed,
                                         "answers_outcome": "abandoned"}
        lead_id = me["call"]["lead_id"]

        await answer_and_hang_up(daemon, "1796046000.1", rang)
        assert (await one.get("/desk/api/me")).json()["state"] == "wrapup"
        page = (await one.get("/desk/agent")).text
        assert 'value="sale"' in page and "Inbound callback" in page
        # Agent 2 has no call; agent 1's own call only, by the session.
        refused = await two.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf_two}, json={"code": "sale"})
        assert refused.status_code == 409
        done = await one.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf},
                              json={"code": "sale", "notes": "renewed on the callback"})
        assert done.status_code == 200, done.text
        assert (done.json()["attempt"], done.json()["action"]) == (call_id, "close")
        assert "Recorded: sale" in (await one.get("/desk/agent")).text
        assert (await one.post("/desk/agent/ready", data={"csrf": csrf})).status_code == 303
        assert (await one.get("/desk/api/me")).json()["state"] == "ready"

    assert daemon.store is not None
    [lead] = await daemon.store.find_leads(lead_id=lead_id)
    assert lead["phone"] == CALLER
    [row] = [dict(x) for x in await daemon.store.leads(daemon.runners["sales"].campaign_id) if x["id"] == lead_id]
    assert (row["state"], row["final_reason"]) == ("done", "sale")
    attempts = {a["id"]: a for a in await daemon.store.attempts(daemon.runners["sales"].campaign_id)}
    assert (attempts[missed]["disposition"], attempts[missed]["disposition_agent"]) == ("sale", "agent1")
    assert attempts[missed]["disposition_notes"] == "renewed on the callback"
    assert all(a["disposition"] is None for i, a in attempts.items() if i != missed)  # not the other customer's
    [hook] = await outbox(daemon)
    assert hook["webhook"] == "crm" and hook["attempt_id"] == missed


async def test_an_unknown_caller_gets_their_number_only_and_no_disposition(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one:
        await add_leads(one)
        await abandoned(daemon)
        csrf = await sign_in(one, "agent1")
        async with one.stream("GET", "/desk/agent/events") as response:
            mine = Feed(response)
            try:
                await mine.until("event: pop")
                call_id, rang = await ring_inbound(daemon, "+1 (415) 555-0100", "1796046000.2")
                await mine.until("unknown caller")
                await mine.until("+14155550100")
                assert "Grace" not in mine.text and OTHER not in mine.text
            finally:
                await mine.close()
        me = (await one.get("/desk/api/me")).json()
        assert (me["call"]["attempt"], me["call"]["lead_id"], me["call"]["screen_pop"]) == (call_id, None, None)
        assert me["call"]["inbound"]["known"] is False and me["call"]["inbound"]["caller"] == "+14155550100"

        await answer_and_hang_up(daemon, "1796046000.2", rang)
        assert (await one.get("/desk/api/me")).json()["state"] == "wrapup"
        page = (await one.get("/desk/agent")).text
        assert 'id="no-disposition"' in page and 'value="sale"' not in page and "Grace" not in page
        refused = await one.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf}, json={"code": "sale"})
        assert refused.status_code == 409 and "unknown caller" in refused.json()["message"]
        form = await one.post("/desk/agent/disposition", data={"csrf": csrf, "code": "sale"})
        assert form.status_code == 303 and "unknown caller" in (await one.get("/desk/agent")).text
        assert (await one.post("/desk/agent/ready", data={"csrf": csrf})).status_code == 303
        assert (await one.get("/desk/api/me")).json()["call"] is None

    assert daemon.store is not None
    assert all(a["disposition"] is None for a in await daemon.store.attempts(daemon.runners["sales"].campaign_id))
    assert await outbox(daemon) == []


async def test_a_withheld_number_pops_as_withheld(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one:
        await sign_in(one, "agent1")
        await ring_inbound(daemon, "anonymous", "1796046000.3")
        await asyncio.sleep(0.1)
        page = (await one.get("/desk/agent")).text
        assert "number withheld" in page and "unknown caller" in page


async def test_a_callback_given_after_an_inbound_call_is_booked_for_the_callers_lead(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one:
        await add_leads(one)
        await abandoned(daemon)
        csrf = await sign_in(one, "agent1")
        _, rang = await ring_inbound(daemon, "+12025550176", "1796046000.4")
        for _ in range(500):  # the pop, then the customer's zone, are read in the background
            call = (await one.get("/desk/api/me")).json()["call"]
            if call["customer_zone"] is not None:
                break
            await asyncio.sleep(0.01)
        assert (call["customer_zone"], call["inbound"]["known"]) == ("America/New_York", True)
        lead_id = call["lead_id"]
        await answer_and_hang_up(daemon, "1796046000.4", rang)
        assert "America/New_York" in (await one.get("/desk/agent")).text  # the picker, in the caller's zone
        day = (datetime.now(NEW_YORK) + timedelta(days=2)).date()
        booked = await one.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf},
                                json={"code": "call_back", "callback_local": f"{day}T10:15"})
        assert booked.status_code == 200, booked.text
        callbacks = (await one.get("/callbacks", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    (callback,) = callbacks
    due = datetime.fromisoformat(callback["due_at"]).astimezone(NEW_YORK)
    assert (callback["lead_id"], due.date(), due.hour, due.minute) == (lead_id, day, 10, 15)
