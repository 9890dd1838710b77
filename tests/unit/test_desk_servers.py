"""The supervisor's monitor call with two Asterisk servers: ChanSpy sees only its own server's
channels, so the call to the supervisor's phone goes to the server the agent's phone is on, and
is refused, clearly, while that server is down (never sent to the other one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dialer.control.desk_state import DeskRefused
from dialer.daemon.desk import MONITOR_CONTEXT, Desk
from dialer.daemon.server import Daemon
from dialer.http.desk_auth import Role, set_user
from dialer.pbx.simulated import Customer, SimulatedPbx
from tests.unit.two_server_daemon import serving_two_servers

SUPERVISOR_PHONE = "PJSIP/sup1"


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ami": [
            {"name": "a", "username": "dialer", "secret": "x", "ping_interval": 0.5, "action_timeout": 1},
            {"name": "b", "username": "dialer", "secret": "x", "ping_interval": 0.5, "action_timeout": 1},
        ],
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/desk.db"},
        "tick_interval": 0.05,
        "http": {"port": 0, "token": "s3cret-token-for-the-desk-servers", "desk_users_file": "desk-users.yaml"},
        "agents": [
            {"id": "agent1", "interface": "PJSIP/agent1", "queues": ["sales"]},
            {"id": "agent3", "interface": "PJSIP/agent3", "queues": ["sales"], "server": "b"},
        ],
    }


def _customer(number: str) -> Customer:
    # The supervisor's phone rings unanswered; every customer talks all through the test.
    return Customer("no_answer", after=3600.0) if number == "sup1" else Customer("answer", after=0.05, talk=120)


@dataclass
class Floor:
    daemon: Daemon
    desk: Desk
    sims: dict[str, SimulatedPbx]

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"never: {what}"
            await asyncio.sleep(0.02)

    def spy_calls(self, server: str) -> list[dict[str, Any]]:
        return [o for o in self.sims[server].originated if o["context"] == MONITOR_CONTEXT]


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[Floor]:
    set_user(tmp_path / "desk-users.yaml", "boss", Role.supervisor, "supervisor-secret", phone=SUPERVISOR_PHONE)
    async with serving_two_servers(tmp_path, _config(tmp_path), _customer, "desk.db") as (daemon, sims, _):
        assert daemon.desk is not None
        ready = Floor(daemon, daemon.desk, sims)
        await ready.until(lambda: daemon.pool is not None and all(p.connected.is_set() for p in daemon.pbxs.values()),
                          "both servers logged in")
        on_call = lambda interface: (s := daemon.board.agent(interface)) is not None and bool(s.on_call)  # noqa: E731
        await ready.until(lambda: on_call("PJSIP/agent1") and on_call("PJSIP/agent3"), "each agent on a call")
        yield ready


async def test_the_monitor_call_goes_to_the_agents_own_server(floor: Floor) -> None:
    spy = await floor.desk.monitor("agent3", "listen", SUPERVISOR_PHONE)
    assert [(o["attempt_id"], o["channel"], o["variables"]["SPY_TARGET"]) for o in floor.spy_calls("b")] == [
        (spy, SUPERVISOR_PHONE, "PJSIP/agent3-")
    ]
    assert floor.spy_calls("a") == []  # server a is up and listed first: "any server" would be a
    other = await floor.desk.monitor("agent1", "whisper", SUPERVISOR_PHONE)
    assert [o["attempt_id"] for o in floor.spy_calls("a")] == [other]
    assert [o["attempt_id"] for o in floor.spy_calls("b")] == [spy]


async def test_the_monitor_call_is_refused_while_the_agents_server_is_down(floor: Floor) -> None:
    b = floor.sims["b"]
    b.login_refused = True
    b.drop_connection()  # the link breaks; agent3's call goes on in Asterisk
    await floor.until(lambda: not floor.daemon.pbxs["b"].connected.is_set(), "server b down")
    state = floor.daemon.board.agent("PJSIP/agent3")
    assert state is not None and state.on_call  # as far as the dialer last heard
    with pytest.raises(DeskRefused, match=r"agent3's phone is not reachable.*AMI server b"):
        await floor.desk.monitor("agent3", "barge", SUPERVISOR_PHONE)
    assert floor.spy_calls("a") == [] and floor.spy_calls("b") == []  # nothing sent elsewhere
    # Server a's agent is monitored all the same.
    await floor.desk.monitor("agent1", "listen", SUPERVISOR_PHONE)
    assert len(floor.spy_calls("a")) == 1
