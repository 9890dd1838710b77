"""The daemon's narrow interfaces: the daemon offers all of them, reading changes nothing, and the
metrics and the HTTP app run over a view built by hand, with no daemon at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from ops_fixtures import TOKEN, write_config

from dialer.config.loader import load_config
from dialer.config.models import DialerConfig
from dialer.control import daemon_view as v
from dialer.control.campaign_states import RunState
from dialer.core import records as r
from dialer.core.agents import AgentBoard, AgentState
from dialer.core.trunks import TrunkView
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.metrics import DaemonMetrics

INTERFACES = (v.DaemonView, v.DaemonCommands, v.CampaignHost, v.ConfigHost)


def members(protocol: type) -> set[str]:
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass.__module__ != v.__name__:
            continue
        names |= {n for n in vars(klass) if not n.startswith("_")} | set(getattr(klass, "__annotations__", {}))
    return names


def test_the_daemon_offers_every_member_of_its_interfaces(tmp_path: Path) -> None:
    daemon = Daemon(load_config(write_config(tmp_path)), {})
    missing = {p.__name__: sorted(m for m in members(p) if not hasattr(daemon, m)) for p in INTERFACES}
    assert missing == {p.__name__: [] for p in INTERFACES}
    assert "agent_login" in members(v.DaemonControl) and "status" in members(v.DaemonControl)


def test_an_agent_read_through_the_view_is_a_copy(tmp_path: Path) -> None:
    daemon = Daemon(load_config(write_config(tmp_path)), {})
    daemon.board.apply(r.MemberStatus(at=1.0, queue="sales", interface="PJSIP/agent1", status=1, paused=False,
                                      in_call=False))
    seen = daemon.agent("PJSIP/agent1")
    assert seen is not None and seen.queues == {"sales"}
    seen.queues.add("vip")
    seen.paused = True
    for listed in daemon.agents() + daemon.agents_in_queue("sales"):
        listed.queues.clear()
    kept = daemon.board.agent("PJSIP/agent1")
    assert kept is not None and kept.queues == {"sales"} and not kept.paused


class HandMadeView:
    """Just what the health, status and metrics routes read: no daemon, no store, no AMI."""

    def __init__(self, config: DialerConfig) -> None:
        self.config = config
        self.store = None
        self.runners: dict[str, Any] = {}
        self.draining = False
        self.ami_connected = False
        self.ami_reconnects = 3
        self.ami_servers: list[v.AmiServerStatus] = []
        self.webhooks = None
        self.inbound = None
        self.desk = None
        self.metrics = DaemonMetrics(self)
        self._board = AgentBoard({"agent1": "PJSIP/agent1"})

    def clock(self) -> float:
        return 1000.0

    def agent(self, interface: str) -> AgentState | None:
        return self._board.agent(interface)

    def agents(self) -> list[AgentState]:
        return self._board.agents()

    def agents_in_queue(self, queue: str) -> list[AgentState]:
        return self._board.in_queue(queue)

    async def status(self) -> v.Status:
        return v.Status(campaigns=[], agents_logged_in=0, agents_busy=0, ami_connected=False, elapsed=5.0)

    def campaign_state(self, name: str) -> RunState:
        return RunState.paused

    def campaign_file(self, name: str) -> Path | None:
        return None

    def known_campaigns(self) -> list[str]:
        return ["spring"]

    def campaign_exists(self, name: str) -> bool:
        return name == "spring"

    def config_issues(self) -> list[str]:
        return ["campaigns/broken.yaml:3: dialing.max_lines: Input should be a valid integer"]

    def trunk_views(self) -> list[TrunkView]:
        return []


async def test_metrics_and_the_http_app_run_over_a_view_made_by_hand(tmp_path: Path) -> None:
    view = HandMadeView(load_config(write_config(tmp_path)))
    text = (await view.metrics.render()).decode()
    assert "dialer_ami_connected 0.0" in text and "dialer_ami_reconnects_total 3.0" in text
    assert 'dialer_campaign_state{campaign="spring",state="paused"} 1.0' in text
    assert 'dialer_agents{state="logged_out"} 1.0' in text
    app = build_app(view)  # type: ignore[arg-type]  # a view without commands: reading routes only
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dialer") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"ami": "not logged in", "database": "not open"}
        status = (await client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})).json()
        assert status["campaigns"][0]["name"] == "spring" and status["campaigns"][0]["state"] == "paused"
        assert status["config_issues"] == view.config_issues() and status["uptime_seconds"] == 5.0
