"""The dialplan contract, proven on a real Asterisk with SIPp customers and phones.

One Originate per customer kind, as the daemon places it, into
`dialer-outbound,answered,1`; the SIPp logs and AMI Hangup causes must show
each customer behaving as its number says.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from panoramisk import Manager

from tests.integration.conftest import PORT_OFFSET
from dialer.sandbox import (
    CustomerKind,
    Sandbox,
    SandboxPorts,
    SandboxStartError,
    SandboxState,
    customer_number,
    read_agent_events,
    read_carrier_events,
)

pytestmark = pytest.mark.sandbox

ACTION_TIMEOUT_S = 5.0


@dataclass
class Ami:
    """A thin test helper over panoramisk: every action has a timeout, events are kept."""

    manager: Manager
    events: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    async def action(self, fields: dict[str, str]) -> Any:
        return await asyncio.wait_for(self.manager.send_action(fields, as_list=False), ACTION_TIMEOUT_S)

    def find(self, name: str, **match: str) -> list[tuple[float, dict[str, str]]]:
        return [
            (at, ev)
            for at, ev in self.events
            if ev.get("Event") == name and all(ev.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def ami(sandbox: SandboxState) -> AsyncIterator[Ami]:
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=sandbox.ami.host,
        port=sandbox.ami.port,
        username=sandbox.ami.username,
        secret=sandbox.ami.secret,
        ping_delay=0,
    )
    session = Ami(manager)
    manager.register_event("*", lambda _mgr, event: session.events.append((time.monotonic(), dict(event))))
    await asyncio.wait_for(manager.connect(), ACTION_TIMEOUT_S)
    try:
        yield session
    finally:
        manager.close()


def originate(attempt: str, number: str, queue: str, agent_wait_s: int, ring_timeout_ms: int) -> dict[str, str]:
    """The Originate the daemon sends (README: the dialplan contract)."""
    return {
        "Action": "Originate",
        "ActionID": attempt,
        "Channel": f"PJSIP/{number}@carrier",
        "ChannelId": attempt,
        "Context": "dialer-outbound",
        "Exten": "answered",
        "Priority": "1",
        "Timeout": str(ring_timeout_ms),
        "CallerID": "5550100",
        "Async": "true",
        "Variable": (
            f"DIALER_ATTEMPT={attempt},DIALER_CAMPAIGN=contract-test,DIALER_QUEUE={queue},"
            f"DIALER_AGENT_WAIT={agent_wait_s},DIALER_ABANDON_MSG=vm-goodbye"
        ),
    }


async def test_each_customer_kind_behaves_as_scripted(sandbox: SandboxState, ami: Ami) -> None:
    run = uuid.uuid4().hex[:8]
    serial = int(run, 16) % 10000
    calls = {
        # name: (number, queue, ring timeout ms)
        "answered": (customer_number(CustomerKind.ANSWER, 0, 2, serial), "sales", 10000),
        "abandoned": (customer_number(CustomerKind.ANSWER, 0, 20, serial), "support", 10000),
        "busy": (customer_number(CustomerKind.BUSY, 1, 0, serial), "sales", 10000),
        "no_answer": (customer_number(CustomerKind.NO_ANSWER, 0, 0, serial), "sales", 3000),
        "rejected": (customer_number(CustomerKind.REJECT, 1, 0, serial), "sales", 10000),
        "congestion": (customer_number(CustomerKind.CONGESTION, 1, 0, serial), "sales", 10000),
        "not_found": (customer_number(CustomerKind.NOT_FOUND, 0, 0, serial), "sales", 10000),
        # rings longer than the Originate's timeout: Asterisk must CANCEL it
        "answers_too_late": (customer_number(CustomerKind.ANSWER, 8, 5, serial), "sales", 2000),
    }
    attempts = {name: f"{run}-{name}" for name in calls}

    added = await ami.action({"Action": "QueueAdd", "Queue": "sales", "Interface": "PJSIP/agent1"})
    # A daemon stopped without logging its agents out may have left agent1 there.
    assert added.success or "already there" in added.get("Message", "").lower(), added
    try:
        sent_at: dict[str, float] = {}
        for name, (number, queue, timeout_ms) in calls.items():
            sent_at[name] = time.monotonic()
            # support has no members: the customer waits 1 s, then is abandoned
            reply = await ami.action(originate(attempts[name], number, queue, 1 if queue == "support" else 5, timeout_ms))
            assert reply.success, reply

        def all_hung_up() -> bool:
            return all(ami.find("Hangup", Uniqueid=attempts[name]) for name in calls)

        await ami.wait_for(all_hung_up, 25, "a Hangup for every attempt")
    finally:
        removed = await ami.action({"Action": "QueueRemove", "Queue": "sales", "Interface": "PJSIP/agent1"})
        assert removed.success, removed

    def hangup(name: str) -> tuple[float, dict[str, str]]:
        return ami.find("Hangup", Uniqueid=attempts[name])[0]

    # Failures: the cause Asterisk reports, from the SIP status the carrier sent.
    for name, cause in (("busy", "17"), ("rejected", "21"), ("congestion", "34"), ("not_found", "1")):
        assert hangup(name)[1]["Cause"] == cause, name

    # The SIPp logs reach the disk promptly: every line is there within a second.
    def carrier_logged_all() -> bool:
        seen = {(e.event, e.number) for e in read_carrier_events(sandbox)}
        return all(("invite", calls[name][0]) in seen for name in calls) and (
            ("cancelled", calls["answers_too_late"][0]) in seen
        )

    await ami.wait_for(carrier_logged_all, 1.0, "the carrier's log lines")
    carrier = [e for e in read_carrier_events(sandbox) if e.number in {number for number, _, _ in calls.values()}]

    def events_of(name: str) -> list[str]:
        return [e.event for e in carrier if e.number == calls[name][0]]

    for name in calls:
        assert events_of(name).count("invite") == 1, f"{name} got {events_of(name)}"
    finals = {e.number: e.status for e in carrier if e.event == "final"}
    assert finals == {
        calls["busy"][0]: 486,
        calls["rejected"][0]: 603,
        calls["congestion"][0]: 503,
        calls["not_found"][0]: 404,
    }

    # No answer: Asterisk gives up after the Originate's Timeout, with CANCEL.
    assert "cancelled" in events_of("no_answer")
    no_answer_at, no_answer = hangup("no_answer")
    assert no_answer["Cause"] == "19"
    assert 2.8 <= no_answer_at - sent_at["no_answer"] <= 6.0
    assert events_of("answers_too_late") == ["invite", "ringing", "cancelled"]

    # Answered: the queue rang agent1 with the attempt's id in a SIP header,
    # they were bridged, and the customer hung up after talking 2 s.
    agent_invites = [e for e in read_agent_events(sandbox) if e.event == "invite"]
    assert [(e.agent, e.attempt) for e in agent_invites if e.attempt and e.attempt.startswith(run)] == [
        ("agent1", attempts["answered"])
    ]
    assert ami.find("AgentConnect", Uniqueid=attempts["answered"], Interface="PJSIP/agent1")
    assert events_of("answered") == ["invite", "ringing", "answered", "bye_sent"]
    agent_call = agent_invites[-1].call_id
    await ami.wait_for(
        lambda: any(e.event == "bye_received" and e.call_id == agent_call for e in read_agent_events(sandbox)),
        2.0,
        "the agent phone's BYE",
    )

    # Abandoned: no agent in the queue within DIALER_AGENT_WAIT.
    abandoned = ami.find("UserEvent", UserEvent="DialerAbandoned", Attempt=attempts["abandoned"])
    assert abandoned and abandoned[0][1]["Campaign"] == "contract-test"
    assert abandoned[0][1]["Reason"] == "TIMEOUT"
    assert events_of("abandoned") == ["invite", "ringing", "answered", "bye_received"]


def test_status_and_reuse(sandbox_handle: Sandbox, sandbox: SandboxState) -> None:
    status = sandbox_handle.status()
    assert status["running"] is True
    assert {name: proc["pid"] for name, proc in status["processes"].items()} == sandbox.pids
    assert "secret" not in str(status)
    again = Sandbox(Path(sandbox.workdir), ports=sandbox.ports, agents=len(sandbox.agents)).up()
    assert again.pids == sandbox.pids and again.ami.secret == sandbox.ami.secret


def test_a_port_clash_is_reported_before_anything_starts(tmp_path: Path, sandbox: SandboxState) -> None:
    # +15: between the session sandbox's SIP port and its SIPp ports (see SandboxPorts).
    ports = SandboxPorts.offset(PORT_OFFSET + 15)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", ports.sip))
        with pytest.raises(SandboxStartError, match=f"udp/{ports.sip}"):
            Sandbox(tmp_path, ports=ports).up()
    assert not (tmp_path / "state.json").exists()
