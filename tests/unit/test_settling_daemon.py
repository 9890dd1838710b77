"""Settling through the running daemon on the simulated PBX, and `now` at the API and the CLI.

A campaign whose abandon window is over its limit (its stored history: 5 abandoned of 25
live answers, 20 % against a 15 % limit) is stopped through the control API: it keeps
dialing, one call per free agent, until the rate is at the limit, then stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ops_fixtures import TOKEN, campaign_yaml, close_daemon, open_daemon, write_config
from structlog.testing import capture_logs

from dialer.cli.main import main
from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.http.desk_auth import Role, set_user
from dialer.http.service import HttpService, start_http
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store.store import Store

AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()  # a Tuesday afternoon in the US
AGENTS = ("PJSIP/agent1", "PJSIP/agent2")


class CountingPbx(SimulatedPbx):
    """The simulated PBX, noting at each Originate how many customer calls were already up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.up_at_dial: list[int] = []

    async def originate(self, **kwargs: Any) -> None:
        self.up_at_dial.append(len(self._calls))
        await super().originate(**kwargs)


async def seed(db: str, campaign: Campaign, *, answered: int, abandoned: int, fresh: int) -> None:
    """`answered` live answers an hour ago (`abandoned` of them abandoned), all done, and `fresh` leads to dial."""
    store = await Store.open(db)
    try:
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        await store.import_leads(
            campaign_id, [LeadRow(line=n + 2, phone=f"+1212555{n:04d}") for n in range(answered + fresh)]
        )
        past = datetime.fromtimestamp(T0, UTC) - timedelta(hours=1)
        for n, lease in enumerate(await store.lease_due_leads(campaign_id, answered, past - timedelta(minutes=5))):
            lost = n < abandoned
            await store.finish_attempt(
                lease.attempt_id, outcome="abandoned" if lost else "answered", lead_state="done",
                dialed_at=past - timedelta(seconds=30), answered_at=past - timedelta(seconds=25),
                bridged_at=None if lost else past - timedelta(seconds=24), ended_at=past,
            )
    finally:
        await store.close()


async def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_campaign_stopped_over_its_limit_dials_for_free_agents_until_the_rate_is_there(tmp_path: Path) -> None:
    sim = CountingPbx(random.Random(5), lambda number: Customer("answer", after=0.5, talk=0.1),
                      agents={a: 0.02 for a in AGENTS})
    config_path = tmp_path / "dialer.yaml"
    db = f"sqlite+aiosqlite:///{tmp_path}/settle.db"
    config_path.write_text(yaml.safe_dump({
        "ami": [{"username": "dialer", "secret": "x"}],
        "database": {"url": db},
        "tick_interval": 0.05,
        "agents": [{"id": f"agent{n + 1}", "interface": a, "queues": ["sales"]} for n, a in enumerate(AGENTS)],
        "http": {"port": 0, "token": TOKEN},
    }))
    # Ratio 3: were it not forced to progressive, it would put three calls in flight per free agent.
    campaign = Campaign(name="settle", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"mode": "ratio", "ratio": 3.0, "max_lines": 6, "abandon_limit": 0.15,
                                                "abandon_target": 0.1, "override_ceiling": True})
    await seed(db, campaign, answered=25, abandoned=5, fresh=100)
    started = asyncio.get_running_loop().time()
    daemon = Daemon(load_config(config_path), {"settle": campaign}, drain_timeout=2,
                    clock=lambda: T0 + asyncio.get_running_loop().time() - started, pbx_factory=sim.attach)
    # Paused before it dials: a pause over the limit is a break, and settles nothing.
    assert (await daemon.pause_campaign("settle")).value == "paused"
    serving = asyncio.create_task(daemon.serve())
    try:
        await wait_for(lambda: "settle" in daemon.runners and daemon.ami is not None and daemon.ami.connected.is_set()
                       and sum(1 for a in daemon.board.in_queue("sales") if a.free) == 2)
        runner = daemon.runners["settle"]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(daemon)), base_url="http://d") as api:
            paused = (await api.post("/campaigns/settle/pause", headers=AUTH)).json()
            assert paused["state"] == "paused" and paused["abandon"]["answers_needed"] == 9  # 5 / 34 = 14.7 %
            assert "20.00 %" in paused["warning"]
            await asyncio.sleep(0.3)
            assert not sim.dial_log
            # Stopped from the pause it would stop at once (a paused campaign does not start
            # dialing again); stopped from running, with no tick between, it settles. The
            # stop asked again through the API finds it settling.
            await daemon.resume_campaign("settle")
            assert (await daemon.stop_campaign("settle")).value == "settling"
            stop = await api.post("/campaigns/settle/stop", headers=AUTH)
            assert stop.status_code == 200, stop.text
            assert stop.json()["state"] == "settling" and stop.json()["answers_needed"] == 9
            listed = (await api.get("/campaigns/settle", headers=AUTH)).json()
            assert listed["state"] == "settling" and 0 < listed["answers_needed"] <= 9
            await wait_for(lambda: daemon.campaign_state("settle").value == "stopped")
            dialed = len(sim.dial_log)
            window = runner.abandon_state(daemon.clock())
            assert window.answers_needed == 0 and window.rate <= 0.15
            assert (await api.get("/campaigns/settle", headers=AUTH)).json()["state"] == "stopped"
        await asyncio.sleep(0.5)  # ten ticks: nothing more leaves
        assert len(sim.dial_log) == dialed
        assert dialed >= 9 and not sim.abandoned
        # One call per free agent: never a customer dialed while both agents had theirs.
        assert len(sim.up_at_dial) == dialed and max(sim.up_at_dial) < len(AGENTS)
    finally:
        daemon.should_exit = True
        await asyncio.wait_for(serving, 20)


# -- `now` at the API and the CLI -------------------------------------------------------------


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    (tmp_path / "campaigns" / "spring.yaml").write_text(campaign_yaml("spring"))
    handle = await open_daemon(tmp_path)
    handle.http = await start_http(handle)
    data = yaml.safe_load((tmp_path / "dialer.yaml").read_text())
    data["http"]["port"] = handle.http.port
    (tmp_path / "dialer.yaml").write_text(yaml.safe_dump(data))
    window = handle.runners["spring"].abandon_window
    for n in range(35):  # 3 abandoned of 35 live answers: 8.57 %
        window.record(handle.clock() - 60, abandoned=n < 3)
    try:
        yield handle
    finally:
        await close_daemon(handle)


async def cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_the_api_takes_now_in_the_body_or_the_query_and_refuses_anything_else(daemon: Daemon) -> None:
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as client:
        def stop(**kwargs: Any) -> Any:
            return client.post("/campaigns/spring/stop", headers=AUTH, **kwargs)

        hostile = [
            {"json": {"now": "yes\r\nAction: Originate"}},
            {"json": {"now": ["true"]}},
            {"json": {"now": "x" * 10_000}},
            {"json": {"now": 1}},
            {"json": {"now": True, "also": "x"}},
            {"json": {"now": None}},
            {"json": "true"},
            {"params": {"now": "yes\r\nAction: Originate"}},
            {"params": {"now": "x" * 10_000}},
            {"params": [("now", "true"), ("now", "false")]},
            {"params": {"now": "true"}, "json": {"now": True}},
        ]
        assert daemon.ami is not None
        sent = len(daemon.ami.sent)  # type: ignore[attr-defined]
        for request in hostile:
            refused = await stop(**request)
            assert refused.status_code == 422, request
            body = refused.json()
            assert body["message"] and len(refused.text) < 1000, request
        assert len(daemon.ami.sent) == sent  # type: ignore[attr-defined]  # nothing reached AMI
        assert daemon.campaign_state("spring").value == "running"
        settling = (await stop(json={})).json()
        assert settling == {
            "name": "spring", "state": "settling", "answers_needed": 65,
            "abandon": {"rate": 0.0857, "answered": 35, "abandoned": 3, "limit": 0.03, "answers_needed": 65},
        }
        with capture_logs() as logs:
            ended = (await stop(params={"now": "true"})).json()
        assert ended["state"] == "stopped" and "8.57 %" in ended["warning"]
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["campaign.stopped_over_limit"]
        assert (await client.post("/campaigns/spring/start", headers=AUTH)).json()["state"] == "running"
        with capture_logs() as logs:
            assert (await stop(json={"now": True})).json()["state"] == "stopped"
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["campaign.stopped_over_limit"]
        status = (await client.get("/status", headers=AUTH)).json()
        assert status["campaigns"][0]["state"] == "stopped" and status["campaigns"][0]["answers_needed"] is None


async def test_the_cli_stops_with_now_and_shows_the_settling(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(tmp_path / "dialer.yaml")
    assert await cli("campaign", "pause", "spring", "--now", "--config", config) == 2
    assert capsys.readouterr().err == "dialer: --now goes with stop only\n"
    with pytest.raises(SystemExit) as refused:
        await cli("campaign", "stop", "spring", "--now=yes\r\nAction: Originate", "--config", config)
    assert refused.value.code == 2 and "--now: ignored explicit argument" in capsys.readouterr().err
    assert daemon.campaign_state("spring").value == "running"
    assert await cli("campaign", "pause", "spring", "--config", config) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[-1] == "spring: paused"
    assert out.err.startswith("dialer: warning: spring: paused with its abandon rate 8.57 %")
    # From running (a paused campaign stopped over its limit stops at once, tested above).
    await daemon.resume_campaign("spring")
    assert await cli("campaign", "stop", "spring", "--config", config) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "spring: settling (65 more live answer(s) bridged in time bring the abandon rate 8.57 % to its limit"
        " 3.00 %; `--now` stops at once)"
    )
    assert await cli("status", "--config", config) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "spring" in x)
    assert "settling" in line and "65 more live answer(s)" in line
    assert await cli("status", "--json", "--config", config) == 0
    assert json.loads(capsys.readouterr().out)["campaigns"][0]["answers_needed"] == 65
    assert await cli("campaign", "stop", "spring", "--now", "--config", config) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[-1] == "spring: stopped"
    assert "stopped with its abandon rate 8.57 %" in out.err
    assert daemon.campaign_state("spring").value == "stopped" and daemon.runners["spring"].paused


# -- the supervisor's wall --------------------------------------------------------------------


async def test_the_wall_shows_the_settling_and_stops_it_at_once(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["http"]["desk_users_file"] = "desk-users.yaml"
    path.write_text(yaml.safe_dump(config))
    set_user(tmp_path / "desk-users.yaml", "boss", Role.supervisor, "supervisor-secret")
    (tmp_path / "campaigns" / "spring.yaml").write_text(campaign_yaml("spring"))
    handle = await open_daemon(tmp_path)
    handle.http = HttpService(build_app(handle), "127.0.0.1", 0)
    await handle.http.start()
    window = handle.runners["spring"].abandon_window
    for n in range(35):
        window.record(handle.clock() - 60, abandoned=n < 3)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.http.port}") as boss:
            signed = await boss.post("/desk/sign-in", data={"user": "boss", "secret": "supervisor-secret"})
            assert signed.status_code == 303
            page = (await boss.get("/desk/wall")).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            assert "stop now" not in page
            await boss.post("/desk/wall/campaigns/spring/stop", data={"csrf": csrf})
            page = (await boss.get("/desk/wall")).text
            assert "spring: settling" in page and "(settling)" in page
            assert re.search(r'data-figure="answers_needed">[^<]*\b65 more live answer', page)
            assert 'action="/desk/wall/campaigns/spring/stop-now"' in page
            assert (await boss.get("/desk/api/wall")).json()["campaigns"][0]["live"]["answers_needed"] == 65
            with capture_logs() as logs:
                await boss.post("/desk/wall/campaigns/spring/stop-now", data={"csrf": csrf})
            assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["campaign.stopped_over_limit"]
            page = (await boss.get("/desk/wall")).text
            assert "spring: stopped (stopped with its abandon rate 8.57 %" in page and "(stopped)" in page
            assert handle.campaign_state("spring").value == "stopped"
    finally:
        assert handle.desk is not None
        await handle.desk.close()
        await close_daemon(handle)
