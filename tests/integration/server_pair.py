"""Two Asterisk sandboxes as one floor, for the tests that run a campaign over two servers: the pair
itself, the daemon's `ami:` entries for it, its agents, and which calls are up on one of them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialer.sandbox import Sandbox, SandboxPorts, SandboxState, read_agent_events, read_carrier_events

_ENDED = frozenset({"final", "cancelled", "bye_sent", "bye_received"})


def sandbox_pair(tmp_path_factory: pytest.TempPathFactory, offset: int) -> Iterator[tuple[Sandbox, Sandbox]]:
    """Sandboxes a and b at port offsets `offset` and `offset + 100`, three agent phones each, torn down
    after use. The callers pick offsets clear of the session's own sandbox and of the other tests'."""
    a = Sandbox(tmp_path_factory.mktemp("sandbox_a"), ports=SandboxPorts.offset(offset), agents=3)
    b = Sandbox(tmp_path_factory.mktemp("sandbox_b"), ports=SandboxPorts.offset(offset + 100), agents=3)
    say = lambda message: print(f"[sandbox] {message}", file=sys.stderr)  # noqa: E731
    a.up(progress=say)
    try:
        b.up(progress=say)
        try:
            yield a, b
        finally:
            b.down()
    finally:
        a.down()


def ami_servers(tmp: Path, a: SandboxState, b: SandboxState, *, max_lines: int = 3) -> list[dict[str, Any]]:
    """The config's `ami:` list for the pair, servers named "a" and "b", each secret in its own file;
    short pings and action timeouts so a server that goes away is seen gone within seconds."""
    servers = []
    for name, state in (("a", a), ("b", b)):
        secret = tmp / f"ami-secret-{name}"
        secret.write_text(state.ami.secret)
        servers.append({"name": name, "host": state.ami.host, "port": state.ami.port,
                        "username": state.ami.username, "secret_file": str(secret), "max_lines": max_lines,
                        "ping_interval": 1, "action_timeout": 3})
    return servers


def floor_agents(a: SandboxState, b: SandboxState, *, on_a: int, on_b: int, queue: str = "sales") -> list[dict[str, Any]]:
    """`on_a` agents whose phones register on a, then `on_b` on b. Interfaces are unique over the
    floor, so b's agents take the phones after a's (agent3 on b when a has two)."""
    assert on_a + on_b <= min(len(a.agents), len(b.agents))
    agents = [{"id": p.id, "interface": p.interface, "queues": [queue], "server": "a"} for p in a.agents[:on_a]]
    agents += [{"id": f"b-{p.id}", "interface": p.interface, "queues": [queue], "server": "b"}
               for p in b.agents[on_a:on_a + on_b]]
    return agents


def calls_up(state: SandboxState, numbers: set[str]) -> set[str]:
    """The numbers whose call the sandbox's carrier answered and has not ended, while an agent phone
    of the same sandbox holds an answered call too: customers in conversation, as its SIPp logs say."""
    agent_events = read_agent_events(state)
    agent_gone = {e.call_id for e in agent_events if e.event in ("bye_received", "cancelled")}
    if not any(e.event == "answered" and e.call_id not in agent_gone for e in agent_events):
        return set()
    carrier = [e for e in read_carrier_events(state) if e.number in numbers]
    gone = {e.call_id for e in carrier if e.event in _ENDED}
    return {e.number for e in carrier if e.event == "answered" and e.call_id not in gone}
