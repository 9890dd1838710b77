"""Each AMI server's state on /readyz, /status and /metrics (issue 13), and a SIGHUP that changes
`ami:` or `daemons:`: the daemon, on two simulated servers, one dropped then the other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dialer.config.loader import ConfigError, load_config
from dialer.control import daemon_view as v
from dialer.daemon.campaign_watcher import reload_config
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.metrics import DaemonMetrics
from dialer.pbx.simulated import Customer, SimulatedPbx
from tests.unit.two_server_daemon import serving_two_servers

TOKEN = "s3cret-token-for-server-status"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ami": [
            {"name": "a", "username": "dialer", "secret": "x", "ping_interval": 0.5, "action_timeout": 1,
             "max_lines": 2},
            {"name": "b", "username": "dialer", "secret": "x", "ping_interval": 0.5, "action_timeout": 1},
        ],
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/status.db"},
        "tick_interval": 0.05,
        "http": {"port": 0, "token": TOKEN},
        "agents": [
            {"id": "agent1", "interface": "PJSIP/agent1", "queues": ["sales"]},
            {"id": "agent3", "interface": "PJSIP/agent3", "queues": ["sales"], "server": "b"},
        ],
    }


@dataclass
class Floor:
    daemon: Daemon
    sims: dict[str, SimulatedPbx]
    http: httpx.AsyncClient
    config_path: Path

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"never: {what}"
            await asyncio.sleep(0.02)

    async def metric(self, name: str) -> dict[str, float]:
        text = (await self.http.get("/metrics")).text
        return {
            sample.labels["server"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[Floor]:
    # Calls long enough to be up all through the test, one on each server.
    customers = lambda number: Customer("answer", after=0.05, talk=120)  # noqa: E731
    async with serving_two_servers(tmp_path, _config(tmp_path), customers, "status.db") as (daemon, sims, config_path):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(daemon)),
                                     base_url="http://dialer") as http:
            ready = Floor(daemon, sims, http, config_path)
            await ready.until(lambda: daemon.pool is not None and all(p.connected.is_set() for p in daemon.pbxs.values()),
                              "both servers logged in")
            await ready.until(lambda: all(sim.bridged for sim in sims.values()), "a call bridged on each server")
            yield ready


async def test_each_server_is_listed_and_ready_means_one_can_dial(floor: Floor) -> None:
    http, sims = floor.http, floor.sims
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["checks"] == {"ami": "ok", "database": "ok"}
    assert [(s["name"], s["state"]) for s in body["servers"]] == [("a", "up"), ("b", "up")]
    assert "last_error" not in body["servers"][0]  # /readyz takes no token: no error text there
    status = (await http.get("/status", headers=AUTH)).json()
    assert [(s["name"], s["state"], s["calls_in_progress"], s["max_lines"]) for s in status["servers"]] == [
        ("a", "up", 1, 2), ("b", "up", 1, None)
    ]
    assert await floor.metric("dialer_ami_server_up") == {"a": 1.0, "b": 1.0}
    assert await floor.metric("dialer_ami_server_calls") == {"a": 1.0, "b": 1.0}
    assert await floor.metric("dialer_ami_server_max_lines") == {"a": 2.0}
    up_since = {s["name"]: s["since"] for s in status["servers"]}

    # b restarts and stays away: still ready (a can dial), b listed down since it went.
    sims["b"].restart(down_for=60)
    await floor.until(lambda: not floor.daemon.pbxs["b"].connected.is_set(), "b logged out")
    went_at = time.time()
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert [(s["name"], s["state"]) for s in ready.json()["servers"]] == [("a", "up"), ("b", "down")]
    status = (await http.get("/status", headers=AUTH)).json()
    a, b = status["servers"]
    assert status["ami_connected"] is True
    assert a["since"] == up_since["a"] and b["since"] > up_since["b"]
    assert datetime.fromisoformat(b["since"]).timestamp() <= went_at + 0.5
    await floor.until(lambda: floor.daemon.pbxs["b"].last_error is not None, "b's reconnection refused")
    b = (await http.get("/status", headers=AUTH)).json()["servers"][1]
    assert "refused" in b["last_error"] and b["state"] == "down"  # says why it is away
    assert await floor.metric("dialer_ami_server_up") == {"a": 1.0, "b": 0.0}
    since = await floor.metric("dialer_ami_server_state_since_timestamp_seconds")
    assert since["b"] == pytest.approx(datetime.fromisoformat(b["since"]).timestamp(), abs=1e-3)

    # Both away: not ready, each listed down.
    sims["a"].restart(down_for=60)
    await floor.until(lambda: not floor.daemon.pbxs["a"].connected.is_set(), "a logged out")
    down = await http.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["ami"] == "not logged in"
    assert [(s["name"], s["state"]) for s in down.json()["servers"]] == [("a", "down"), ("b", "down")]
    assert await floor.metric("dialer_ami_server_up") == {"a": 0.0, "b": 0.0}


async def test_a_server_shutting_down_is_listed_so_and_takes_no_call(floor: Floor) -> None:
    # After Asterisk's `Shutdown` event (or an Originate it refused as shutting down) and until
    # the connection drops, the server is logged in but gets no call.
    assert floor.daemon.pool is not None
    floor.daemon.pool.going_away("b")
    ready = (await floor.http.get("/readyz")).json()
    assert [(s["name"], s["state"]) for s in ready["servers"]] == [("a", "up"), ("b", "shutting_down")]
    assert await floor.metric("dialer_ami_server_up") == {"a": 1.0, "b": 0.0}


async def test_a_sighup_that_changes_the_servers_or_daemons_warns_once_and_keeps_the_servers(
    floor: Floor, tmp_path: Path
) -> None:
    daemon, sims = floor.daemon, floor.sims
    before = {name: (pbx, pbx.reconnects) for name, pbx in daemon.pbxs.items()}
    logins = {name: sim.counters["logins"] for name, sim in sims.items()}
    data = _config(tmp_path)
    data["ami"][0]["max_lines"] = 5
    data["ami"].append({"name": "c", "username": "dialer", "secret": "x"})
    data["daemons"] = {"id": "renamed", "takeover_after": 30}
    data["agents"][1]["queues"] = ["sales", "support"]  # applied live as ever
    floor.config_path.write_text(yaml.safe_dump(data))
    with structlog.testing.capture_logs() as logs:
        result = await reload_config(daemon, floor.config_path)
    assert result.need_restart == ["ami", "daemons"] and result.applied == ["agents"]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1, logs
    [warning] = warnings
    assert warning["event"] == "config.reload_needs_restart"
    assert warning["settings"] == ["ami", "daemons"]
    # The servers in use are the ones the daemon started with: the same connections, not dropped.
    assert {name: (pbx, pbx.reconnects) for name, pbx in daemon.pbxs.items()} == before
    assert {name: sim.counters["logins"] for name, sim in sims.items()} == logins
    assert [s.name for s in daemon.config.ami] == ["a", "b"] and daemon.config.ami[0].max_lines == 2
    assert [(s["name"], s["state"]) for s in (await floor.http.get("/status", headers=AUTH)).json()["servers"]] == [
        ("a", "up"), ("b", "up")
    ]
    # Each SIGHUP while the file still differs says so again; once the file is back, nothing.
    with structlog.testing.capture_logs() as logs:
        again = await reload_config(daemon, floor.config_path)
    assert again.need_restart == ["ami", "daemons"] and again.applied == []
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["config.reload_needs_restart"]
    floor.config_path.write_text(yaml.safe_dump(_config(tmp_path)))
    with structlog.testing.capture_logs() as logs:
        back = await reload_config(daemon, floor.config_path)
    assert back.need_restart == [] and back.applied == ["agents"]
    assert not [e for e in logs if e["log_level"] == "warning"]


async def test_a_sighup_moving_an_agent_to_a_server_not_running_keeps_the_agents_as_they_are(
    floor: Floor, tmp_path: Path
) -> None:
    daemon = floor.daemon
    data = _config(tmp_path)
    data["ami"].append({"name": "c", "username": "dialer", "secret": "x"})
    data["agents"][1]["server"] = "c"
    floor.config_path.write_text(yaml.safe_dump(data))
    with structlog.testing.capture_logs() as logs:
        result = await reload_config(daemon, floor.config_path)
    assert result.need_restart == ["ami", "agents"] and result.applied == []
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["settings"] == ["ami", "agents"] and warning["agents_on_servers_not_running"] == ["agent3"]
    assert [daemon.config.server_of(a) for a in daemon.config.agents] == ["a", "b"]
    # The agent is still a member on b, where its phone is.
    assert "PJSIP/agent3" in floor.sims["b"].queues["sales"]

class _View:
    """Only what the metrics read, with server names no config would let in."""

    def __init__(self, names: list[str]) -> None:
        self.store = None
        self.runners: dict[str, Any] = {}
        self.ami_connected = True
        self.ami_reconnects = 0
        self.webhooks = None
        self.ami_servers = [v.AmiServerStatus(name=n, state="up", since=1.0, calls=0, max_lines=None, last_error=None)
                            for n in names]

    def clock(self) -> float:
        return 1.0

    def agents(self) -> list[Any]:
        return []

    def known_campaigns(self) -> list[str]:
        return []

    def config_issues(self) -> list[str]:
        return []

    def trunk_views(self) -> list[Any]:
        return []


async def test_a_server_name_is_escaped_in_the_metrics_label_and_refused_in_the_config(tmp_path: Path) -> None:
    hostile = 'a"} 1\ndialer_fake{x="\\'
    text = (await DaemonMetrics(_View([hostile, "b"])).render()).decode()  # type: ignore[arg-type]
    assert 'dialer_ami_server_up{server="a\\"} 1\\ndialer_fake{x=\\"\\\\"} 1.0' in text
    assert "\ndialer_fake" not in text
    # Parsed back, the label is the name as given: nothing leaked into a sample of its own.
    up = {s.labels["server"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
          if s.name == "dialer_ami_server_up"}
    assert up == {hostile: 1.0, "b": 1.0}
    for name in ('a"b', "a\\b", "a\nb", "a b", "<b>"):
        path = tmp_path / "dialer.yaml"
        data = _config(tmp_path)
        data["ami"][1]["name"] = name
        data["agents"] = []
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert f"{path}:" in str(caught.value) and "name" in str(caught.value), name

