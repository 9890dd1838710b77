"""The agent desk and the supervisor's wall over HTTP, with a real store, a fake AMI and
the daemon's own HTTP server (uvicorn, so the live feeds really stream): roles, sessions,
CSRF, the screen pop pushed to its agent only, dispositions with callbacks in the
customer's zone, wrap-up teaching the pacing, and hostile input."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from ops_fixtures import TOKEN, close_daemon, open_daemon, write_config

from dialer.core import records as r
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.http.desk_auth import Role, read_users, set_user
from dialer.http.service import HttpService

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEW_YORK = ZoneInfo("America/New_York")
XSS_NAME = '<img src=x onerror="alert(1)">Grace'
XSS_SCRIPT = "Hello </div><script>alert('script')</script>"
SECRETS = {"agent1": "agent-one-secret", "agent2": "agent-two-secret", "boss": "supervisor-secret"}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["http"]["desk_users_file"] = "desk-users.yaml"
    path.write_text(yaml.safe_dump(config))
    users = tmp_path / "desk-users.yaml"
    set_user(users, "agent1", Role.agent, SECRETS["agent1"])
    set_user(users, "agent2", Role.agent, SECRETS["agent2"])
    set_user(users, "boss", Role.supervisor, SECRETS["boss"], phone="PJSIP/sup1")
    (tmp_path / "campaigns" / "sales.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "sales",
                "type": "telemarketing",
                "trunk": "PJSIP/{number}@carrier",
                "caller_id": "+15550100",
                "queue": "sales",
                "script": XSS_SCRIPT,
                "wrapup_limit": 600,
                "calling_hours": {"start": "09:00", "end": "18:00", "timezone": "America/New_York"},
                "dispositions": {"sale": "close", "call_back": "callback", "not_interested": "close"},
            }
        )
    )
    handle = await open_daemon(tmp_path)
    assert handle.desk is not None
    handle.http = HttpService(build_app(handle), "127.0.0.1", 0)
    await handle.http.start()
    try:
        yield handle
    finally:
        await handle.desk.close()
        await close_daemon(handle)


def base(daemon: Daemon) -> str:
    assert daemon.http is not None
    return f"http://127.0.0.1:{daemon.http.port}"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, user: str, secret: str | None = None) -> str:
    reply = await client.post("/desk/sign-in", data={"user": user, "secret": secret or SECRETS[user]})
    assert reply.status_code == 303, reply.text
    page = await client.get(reply.headers["location"])
    assert page.status_code == 200
    return csrf_of(page.text)


def feed(daemon: Daemon, record: Any) -> None:
    """What the daemon's event consumer does with an agent record."""
    agent = daemon.board.apply(record)
    assert agent is not None and daemon.desk is not None
    daemon.desk.on_agent_record(agent, record, record.at)


async def ring_agent1(daemon: Daemon, client: httpx.AsyncClient) -> tuple[str, float]:
    lead = {"phone": "+12025550176", "name": XSS_NAME, "tier": "gold", "value": "1200"}
    assert (await client.post("/campaigns/sales/leads", headers=AUTH, json=lead)).status_code == 201
    for agent in ("PJSIP/agent1", "PJSIP/agent2"):
        feed(daemon, r.MemberStatus(at=time.time(), queue="sales", interface=agent, status=1, paused=False,
                                    in_call=False))
    runner = daemon.runners["sales"]
    # A moment inside the customer's calling window (noon in New York, tomorrow).
    noon = datetime.now(NEW_YORK).replace(hour=12, minute=0) + timedelta(days=1)
    await runner.tick(noon.timestamp())
    await runner.wait_sends()
    (attempt,) = runner.attempts.values()
    rang = time.time()
    feed(daemon, r.AgentRinging(uniqueid=attempt.id, at=rang, queue="sales", interface="PJSIP/agent1"))
    return attempt.id, rang


class Feed:
    """An open event stream read in the background into `text`."""

    def __init__(self, response: httpx.Response) -> None:
        self.text = ""
        self._task = asyncio.create_task(self._read(response))

    async def _read(self, response: httpx.Response) -> None:
        async for chunk in response.aiter_text():
            self.text += chunk

    async def until(self, wanted: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while wanted not in self.text:
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError(f"{wanted!r} not in the feed within {timeout} s")
            await asyncio.sleep(0.01)
        return self.text

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_sign_in_roles_and_the_pages(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon)) as client:
        assert (await client.get("/desk/agent")).status_code == 303  # to the sign-in page
        wrong = await client.post("/desk/sign-in", data={"user": "agent1", "secret": "nope-nope-nope"})
        assert wrong.status_code == 401
        assert "dialer_desk" not in wrong.headers.get("set-cookie", "")
        reply = await client.post("/desk/sign-in", data={"user": "agent1", "secret": SECRETS["agent1"]})
        cookie = reply.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/desk" in cookie
        assert "secure" not in cookie  # plain HTTP here; Secure when served over TLS
        page = await client.get("/desk/agent")
        assert page.status_code == 200 and 'id="agent-state"' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in page.text.replace('<script src="/static/htmx.min.js" defer></script>', "").replace(
            '<script src="/static/htmx-ext-sse.min.js" defer></script>', "")
        # An agent's credential opens no supervisor page and no admin API.
        assert (await client.get("/desk/wall")).status_code == 403
        assert (await client.get("/desk/api/wall")).status_code == 403
        assert (await client.get("/status")).status_code == 401
        csrf = csrf_of((await client.get("/desk/agent")).text)
        spy = await client.post("/desk/api/monitor", headers={"X-CSRF-Token": csrf},
                                json={"agent": "agent2", "mode": "listen"})
        assert spy.status_code == 403  # no listening in for agents
        stop = await client.post("/desk/wall/campaigns/sales/stop", data={"csrf": csrf})
        assert stop.status_code == 403 and daemon.controls.state("sales").value != "stopped"
        for name in ("htmx.min.js", "htmx-ext-sse.min.js", "htmx.LICENSE", "htmx-ext-sse.LICENSE"):
            assert (await client.get(f"/static/{name}")).status_code == 200
    async with httpx.AsyncClient(base_url=base(daemon)) as boss:
        await sign_in(boss, "boss")
        assert (await boss.get("/desk/agent")).status_code == 403
        wall = await boss.get("/desk/api/wall")
        assert wall.status_code == 200 and [c["name"] for c in wall.json()["campaigns"]] == ["sales"]
    async with httpx.AsyncClient(base_url=base(daemon)) as admin:
        await sign_in(admin, "admin", TOKEN)  # the API token stays the admin's
        assert (await admin.get("/desk/wall")).status_code == 200
    async with httpx.AsyncClient(base_url=base(daemon)) as anyone:
        spec = (await anyone.get("/openapi.json")).json()
    for path in ("/desk/api/me", "/desk/api/disposition", "/desk/api/ready", "/desk/api/pause", "/desk/api/wall",
                 "/desk/api/monitor"):
        assert path in spec["paths"], path


async def test_the_screen_pop_reaches_its_agent_only_escaped(daemon: Daemon) -> None:
    async with (
        httpx.AsyncClient(base_url=base(daemon), timeout=10) as one,
        httpx.AsyncClient(base_url=base(daemon), timeout=10) as two,
    ):
        await sign_in(one, "agent1")
        await sign_in(two, "agent2")
        async with one.stream("GET", "/desk/agent/events") as mine_response, two.stream(
            "GET", "/desk/agent/events"
        ) as theirs_response:
            assert mine_response.headers["content-type"].startswith("text/event-stream")
            mine, theirs = Feed(mine_response), Feed(theirs_response)
            try:
                await mine.until("event: pop")
                await theirs.until("event: pop")
                attempt_id, rang = await ring_agent1(daemon, one)
                seen = await mine.until("Grace")
                assert time.time() - rang < 1.0
                # Escaped, not markup: the name and the campaign's script.
                assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Grace" in seen
                assert "&lt;script&gt;alert(&#39;script&#39;)&lt;/script&gt;" in seen
                assert "<img" not in seen and "<script>" not in seen
                # The other agent's feed, page and JSON never show that customer.
                with pytest.raises(asyncio.TimeoutError):
                    await theirs.until("Grace", timeout=1.0)
            finally:
                await mine.close()
                await theirs.close()
        assert "Grace" not in (await two.get("/desk/agent")).text
        assert (await two.get("/desk/api/me")).json()["call"] is None
        me = (await one.get("/desk/api/me")).json()
        assert me["call"]["attempt"] == attempt_id and me["state"] == "ringing"
        assert me["call"]["screen_pop"]["customer"]["name"] == XSS_NAME


async def test_disposition_callback_in_the_customers_zone_and_wrapup_learned(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one, httpx.AsyncClient(
        base_url=base(daemon), timeout=10
    ) as two:
        csrf = await sign_in(one, "agent1")
        csrf_two = await sign_in(two, "agent2")
        attempt_id, rang = await ring_agent1(daemon, one)
        feed(daemon, r.AgentConnected(uniqueid=attempt_id, at=rang + 1, queue="sales", interface="PJSIP/agent1"))
        ended = time.time()
        feed(daemon, r.AgentCompleted(uniqueid=attempt_id, at=ended, queue="sales", interface="PJSIP/agent1",
                                      talk_time=1.0))
        await asyncio.sleep(0.1)
        assert (await one.get("/desk/api/me")).json()["state"] == "wrapup"
        pauses = [a for a in daemon.ami.sent if a["Action"] == "QueuePause"]  # type: ignore[attr-defined]
        assert pauses[-1] == {"Action": "QueuePause", "Interface": "PJSIP/agent1", "Paused": "true",
                              "Reason": "wrap-up"}
        page = (await one.get("/desk/agent")).text
        assert "America/New_York" in page and 'value="call_back"' in page

        # Agent 2 forging: no call of theirs, and no way to name agent 1's attempt.
        forged = await two.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf_two},
                                json={"code": "sale", "attempt_id": attempt_id})
        assert forged.status_code == 422  # unknown field
        forged = await two.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf_two}, json={"code": "sale"})
        assert forged.status_code == 409
        # No CSRF token, a wrong one, another site's Origin: refused, nothing written.
        assert (await one.post("/desk/api/disposition", json={"code": "sale"})).status_code == 403
        assert (await one.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf_two},
                               json={"code": "sale"})).status_code == 403
        assert (await one.post("/desk/agent/disposition", data={"csrf": csrf, "code": "sale"},
                               headers={"Origin": "http://evil.example"})).status_code == 403
        too_long = await one.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf},
                                  json={"code": "sale", "notes": "x" * 100_000})
        assert too_long.status_code in (413, 422)

        day = (datetime.now(NEW_YORK) + timedelta(days=2)).date()
        outside = await one.post("/desk/agent/disposition", data={
            "csrf": csrf, "code": "call_back", "callback_local": f"{day}T20:30", "notes": "n"})
        assert outside.status_code == 303
        assert "outside the calling window" in (await one.get("/desk/agent")).text
        inside = await one.post("/desk/agent/disposition", data={
            "csrf": csrf, "code": "call_back", "callback_local": f"{day}T10:15",
            "notes": "<b>call her</b> about the renewal"})
        assert inside.status_code == 303
        assert "Recorded call_back" in (await one.get("/desk/agent")).text

        await asyncio.sleep(0.3)  # a scripted wrap-up
        assert (await one.post("/desk/agent/ready", data={"csrf": csrf})).status_code == 303
        learned = daemon.runners["sales"].stats.wrapup_samples()
        assert len(learned) == 1 and learned[0] >= 0.3 - 0.01
        assert daemon.ami.sent[-1] == {  # type: ignore[attr-defined]
            "Action": "QueuePause", "Interface": "PJSIP/agent1", "Paused": "false"}
        assert (await one.get("/desk/api/me")).json()["state"] == "ready"

    assert daemon.store is not None
    [attempt] = await daemon.store.attempts(daemon.runners["sales"].campaign_id)
    assert (attempt["disposition"], attempt["disposition_agent"]) == ("call_back", "agent1")
    assert attempt["disposition_notes"] == "<b>call her</b> about the renewal"
    async with httpx.AsyncClient(base_url=base(daemon)) as admin:
        callbacks = (await admin.get("/callbacks", headers=AUTH)).json()
    (callback,) = callbacks
    due = datetime.fromisoformat(callback["due_at"]).astimezone(NEW_YORK)
    assert (due.date(), due.hour, due.minute) == (day, 10, 15)


async def test_session_fixation_sign_out_and_sign_in_limits(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon)) as client:
        client.cookies.set("dialer_desk", "planted-by-an-attacker", path="/desk")
        await sign_in(client, "agent1")
        issued = [c for c in client.cookies.jar if c.name == "dialer_desk"]
        assert [c.value for c in issued if c.value != "planted-by-an-attacker"]
        old = next(c.value for c in issued if c.value != "planted-by-an-attacker")
        csrf = csrf_of((await client.get("/desk/agent")).text)
        # A second sign-in issues another id and ends the first.
        await sign_in(client, "agent1")
        async with httpx.AsyncClient(base_url=base(daemon)) as thief:
            thief.cookies.set("dialer_desk", old, path="/desk")
            assert (await thief.get("/desk/api/me")).status_code == 401
        csrf = csrf_of((await client.get("/desk/agent")).text)
        assert (await client.post("/desk/sign-out", data={"csrf": csrf})).status_code == 303
        assert (await client.get("/desk/api/me")).status_code == 401
    async with httpx.AsyncClient(base_url=base(daemon)) as guesser:
        codes = [
            (await guesser.post("/desk/sign-in", data={"user": "agent2", "secret": f"guess-{i}-xxxx"})).status_code
            for i in range(7)
        ]
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
        # Even the right secret waits out the window.
        right = await guesser.post("/desk/sign-in", data={"user": "agent2", "secret": SECRETS["agent2"]})
        assert right.status_code == 429


async def test_a_thousand_feeds(daemon: Daemon) -> None:
    """A flood of event-stream connections: without a session each is refused at once; a
    signed-in user gets a few, then 429; the server still answers."""
    async with httpx.AsyncClient(base_url=base(daemon), timeout=30,
                                 limits=httpx.Limits(max_connections=1100)) as client:
        replies = await asyncio.gather(*(client.get("/desk/agent/events") for _ in range(1000)),
                                       return_exceptions=True)
        # Past the API's connection cap a connection is closed at once; the others are refused.
        answered = [reply.status_code for reply in replies if isinstance(reply, httpx.Response)]
        assert set(answered) == {401} and len(answered) >= 150
        assert all(isinstance(reply, (httpx.Response, httpx.TransportError)) for reply in replies)
        assert daemon.desk is not None and daemon.desk.feeds.count() == 0
        await sign_in(client, "agent1")
        streams = []
        statuses = []
        for _ in range(12):
            request = client.build_request("GET", "/desk/agent/events")
            response = await client.send(request, stream=True)
            statuses.append(response.status_code)
            streams.append(response)
        assert statuses.count(200) == 8 and statuses.count(429) == 4
        for response in streams:
            await response.aclose()
        assert (await client.get("/healthz")).status_code == 200


def test_the_users_file_keeps_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    set_user(path, "alice", Role.supervisor, "a-long-secret", phone="PJSIP/sup1")
    assert "a-long-secret" not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_users(path)["alice"].phone == "PJSIP/sup1"
    with pytest.raises(ValueError):
        set_user(path, "bob", Role.supervisor, "a-long-secret", phone="PJSIP/sup1&PJSIP/evil")
    with pytest.raises(ValueError):
        set_user(path, "admin", Role.supervisor, "a-long-secret")


async def test_wrapup_limit_ends_wrapup_and_teaches_the_pacing(daemon: Daemon) -> None:
    runner = daemon.runners["sales"]
    assert runner.wrapup_from_desk
    runner.campaign = runner.campaign.model_copy(update={"wrapup_limit": 1.0})
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one:
        await sign_in(one, "agent1")
        attempt_id, rang = await ring_agent1(daemon, one)
        feed(daemon, r.AgentConnected(uniqueid=attempt_id, at=rang, queue="sales", interface="PJSIP/agent1"))
        feed(daemon, r.AgentCompleted(uniqueid=attempt_id, at=time.time(), queue="sales", interface="PJSIP/agent1",
                                      talk_time=1.0))
        await asyncio.sleep(0.1)
        board = daemon.board.agent("PJSIP/agent1")
        assert board is not None and board.label == "wrapup" and not board.free
        # The pacing counts the agent as busy in wrap-up, not as free nor gone.
        busy = runner.snapshot(time.time()).busy_agents
        assert [b.in_wrapup for b in busy] == [True]
        await asyncio.sleep(1.2)
        assert (await one.get("/desk/api/me")).json()["state"] == "ready"
        [learned] = runner.stats.wrapup_samples()
        assert 0.9 <= learned <= 1.5
    # A finished call teaches talk time but no invented 0 s wrap-up.
    runner.learn("answered", 0.0, 1.0, 2.0, 10.0)
    assert runner.stats.wrapup_samples() == (learned,)


async def test_pause_reasons_are_a_fixed_list(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one:
        csrf = await sign_in(one, "agent1")
        before = len(daemon.ami.sent)  # type: ignore[attr-defined]
        hostile = await one.post("/desk/api/pause", headers={"X-CSRF-Token": csrf},
                                 json={"reason": "break\r\nAction: Originate"})
        assert hostile.status_code == 409
        assert len(daemon.ami.sent) == before  # type: ignore[attr-defined]
        ok = await one.post("/desk/api/pause", headers={"X-CSRF-Token": csrf}, json={"reason": "lunch"})
        assert ok.status_code == 200 and ok.json()["pause_reason"] == "lunch"
        assert daemon.ami.sent[-1] == {  # type: ignore[attr-defined]
            "Action": "QueuePause", "Interface": "PJSIP/agent1", "Paused": "true", "Reason": "lunch"}
        # Notes just over the limit: refused with a reason, nothing recorded.
        long_notes = await one.post("/desk/api/disposition", headers={"X-CSRF-Token": csrf},
                                    json={"code": "sale", "notes": "n" * 2001})
        assert long_notes.status_code == 422 and "notes" in long_notes.text


async def test_a_ring_the_customer_ended_leaves_no_pop(daemon: Daemon) -> None:
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one:
        await sign_in(one, "agent1")
        attempt_id, _ = await ring_agent1(daemon, one)
        await asyncio.sleep(0.1)
        assert (await one.get("/desk/api/me")).json()["call"]["attempt"] == attempt_id
        # The customer hangs up during the ring: the board forgets it, then the phone is idle.
        daemon.board.ring_ended(attempt_id)
        feed(daemon, r.MemberStatus(at=time.time(), queue="sales", interface="PJSIP/agent1", status=1, paused=False,
                                    in_call=False))
        me = (await one.get("/desk/api/me")).json()
        assert me["call"] is None and me["state"] == "ready"


def test_an_event_stream_line_cannot_start_another_event() -> None:
    from dialer.http.desk_pages import sse

    sent = sse("pop", "<p>Ada\r\n\r\nevent: state\ndata: forged</p>")
    events = [block for block in sent.split("\n\n") if block]
    assert len(events) == 1
    assert all(line.startswith(("event: pop", "data: ")) for line in events[0].split("\n"))


async def test_the_cookie_is_secure_behind_a_tls_proxy(daemon: Daemon) -> None:
    # uvicorn takes X-Forwarded-Proto from a proxy on this host (its forwarded_allow_ips).
    async with httpx.AsyncClient(base_url=base(daemon)) as client:
        reply = await client.post("/desk/sign-in", data={"user": "agent1", "secret": SECRETS["agent1"]},
                                  headers={"X-Forwarded-Proto": "https"})
        assert reply.status_code == 303 and "secure" in reply.headers["set-cookie"].lower()


async def test_a_fresh_page_keeps_what_the_agent_typed(daemon: Daemon) -> None:
    """The page's feed brings the call view again only if it changed since the page was
    rendered: else it would replace a form the agent has started filling in."""
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as one:
        await sign_in(one, "agent1")
        await ring_agent1(daemon, one)
        # The pop is pushed twice (the customer, then their time zones): render the page
        # once both are out, or the second push is rightly "new" to it.
        agent = daemon.desk.agents["agent1"]
        for _ in range(100):
            if agent.call is not None and agent.call.zones:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        page = (await one.get("/desk/agent")).text
        since = re.search(r"/desk/agent/events\?since=(\d+)", page).group(1)  # type: ignore[union-attr]
        async with one.stream("GET", f"/desk/agent/events?since={since}") as current, one.stream(
            "GET", f"/desk/agent/events?since={int(since) - 1}"
        ) as stale:
            fresh, old = Feed(current), Feed(stale)
            try:
                await fresh.until("event: state")
                await old.until("event: pop")
                await asyncio.sleep(0.3)
                assert "event: pop" not in fresh.text
            finally:
                await fresh.close()
                await old.close()


async def test_a_config_reload_adds_and_removes_desk_agents(daemon: Daemon) -> None:
    from dialer.daemon.campaign_watcher import reload_config

    assert daemon.desk is not None and daemon.config_path is not None
    config = yaml.safe_load(daemon.config_path.read_text())
    config["agents"] = [
        {"id": "agent1", "interface": "PJSIP/agent1", "queues": ["sales"]},
        {"id": "agent3", "interface": "PJSIP/agent3", "queues": ["sales"]},
    ]
    daemon.config_path.write_text(yaml.safe_dump(config))
    users = daemon.config_path.parent / "desk-users.yaml"
    set_user(users, "agent3", Role.agent, "agent-three-secret")
    result = await reload_config(daemon, daemon.config_path)
    assert "agents" in result.applied, result
    assert sorted(daemon.desk.agents) == ["agent1", "agent3"]
    async with httpx.AsyncClient(base_url=base(daemon)) as client:
        await sign_in(client, "agent3", "agent-three-secret")
        assert (await client.get("/desk/api/me")).json()["user"] == "agent3"
    async with httpx.AsyncClient(base_url=base(daemon)) as gone:
        reply = await gone.post("/desk/sign-in", data={"user": "agent2", "secret": SECRETS["agent2"]})
        assert reply.status_code == 401  # a secret left in the file opens nothing once the agent is gone


async def test_an_agent_not_signed_in_to_the_desk_is_not_held_in_wrapup(daemon: Daemon) -> None:
    # A phone-only agent has nobody to press Ready: holding them paused until the
    # wrap-up limit would idle them after every call. They are free at once, and the
    # pacing learns a 0 s wrap-up, as without a desk.
    runner = daemon.runners["sales"]
    async with httpx.AsyncClient(base_url=base(daemon), timeout=10) as admin:
        attempt_id, rang = await ring_agent1(daemon, admin)
        feed(daemon, r.AgentConnected(uniqueid=attempt_id, at=rang, queue="sales", interface="PJSIP/agent1"))
        feed(daemon, r.AgentCompleted(uniqueid=attempt_id, at=time.time(), queue="sales", interface="PJSIP/agent1",
                                      talk_time=1.0))
        await asyncio.sleep(0.1)
        board = daemon.board.agent("PJSIP/agent1")
        assert board is not None and board.label != "wrapup" and board.free
        assert runner.stats.wrapup_samples() == (0.0,)
        assert [a for a in daemon.ami.sent if a.get("Action") == "QueuePause"] == []
