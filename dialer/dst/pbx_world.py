"""The simulated Asterisk (`dialer.pbx.simulated.SimulatedPbx`) as the whole-daemon simulation needs it.

One Asterisk outlives many daemons: a daemon killed mid-call leaves its calls
up and the next one finds them. `SimulatedPbx` is one object for the PBX and
its AMI connection; `DaemonPbx` adds what a crash needs (the dead daemon's
connection, queued events and login callbacks go with it), a trace line for
every action and event, the calls a restart cut, and a scenario of customers
drawn from the seed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from typing import Any

from dialer.ami.events import WANTED
from dialer.config.models import AmiServer
from dialer.pbx.simulated import Customer, SimulatedPbx

# What a customer does when dialed, and how often.
FATES: tuple[tuple[str, float], ...] = (
    ("answer", 0.45),
    ("busy", 0.15),
    ("no_answer", 0.2),
    ("congestion", 0.05),
    ("rejected", 0.05),
    ("not_found", 0.05),
    ("machine", 0.05),
)
TALK_S = (10.0, 150.0)


def customers(rng: random.Random) -> Callable[[str], Customer]:
    """A new draw for every dial: the same number may be busy now and answer later."""
    names = [name for name, _ in FATES]
    weights = [weight for _, weight in FATES]

    def customer(_number: str) -> Customer:
        fate = rng.choices(names, weights)[0]
        after = rng.uniform(1.0, 30.0) if fate == "no_answer" else rng.uniform(0.5, 15.0)
        patience = rng.uniform(1.0, 10.0) if rng.random() < 0.1 else None
        return Customer(fate, after=after, talk=rng.uniform(*TALK_S), patience=patience)

    return customer


class _TracedQueue(asyncio.Queue[tuple[dict[str, str], float]]):
    def __init__(self, trace: Callable[[str], None]) -> None:
        super().__init__()
        self._trace = trace

    def put_nowait(self, item: tuple[dict[str, str], float]) -> None:
        event = item[0]
        key = event.get("Uniqueid") or event.get("Attempt") or event.get("Interface") or ""
        self._trace(f"event {event.get('Event')} {key[:12]} {event.get('Cause', '')}".rstrip())
        super().put_nowait(item)


class DaemonPbx(SimulatedPbx):
    def __init__(self, rng: random.Random, agents: list[str], trace: Callable[[str], None]) -> None:
        super().__init__(rng, customers(random.Random(rng.random())), agents=agents, wanted_events=WANTED)
        self.trace = trace
        self.events = _TracedQueue(trace)
        self.cut_by_restart: set[str] = set()
        """Attempts whose call a PBX restart ended: whatever the customer meant, the PBX decided."""
        self._held: list[dict[str, str]] = []
        self._held_for: asyncio.Event | None = None

    def attach(self, server: AmiServer, clock: Callable[[], float]) -> SimulatedPbx:
        # A new daemon: a new connection, with nothing of the dead one's queued on it.
        self.events = _TracedQueue(self.trace)
        self._on_login = []
        return super().attach(server, clock)

    async def run(self, stopping: asyncio.Event) -> None:
        self._stopping = stopping
        await super().run(stopping)

    def daemon_killed(self) -> None:
        """The daemon's process is gone: so is its TCP connection, and its reconnect loop.

        The loop is told to stop as well as cancelled: on Python 3.11 `asyncio.wait_for` may swallow a
        cancellation that lands as its reply arrives, and the dead daemon would go on pinging.
        """
        stopping = getattr(self, "_stopping", None)
        if stopping is not None:
            stopping.set()
        self.drop_connection()

    async def action(self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None) -> Any:
        name = str(fields.get("Action", "?"))
        self.trace(f"action {name} {str(fields.get('ActionID') or fields.get('Queue') or '')[:12]}".rstrip())
        return await super().action(fields, as_list=as_list, timeout=timeout)

    def _emit(self, event: dict[str, str]) -> None:
        """A half-open link delays the events, it does not lose them: TCP delivers what it held
        once the link heals, unless the session is declared dead first (then they are lost with it).
        `SimulatedPbx` drops them at once, which no surviving TCP session does."""
        session = self._lost  # a new one at every login
        if self._link and self._half_open():
            if self._held_for is not session:
                self._held, self._held_for = [], session
            if not self._held:
                self._later(None, self._half_open_until - self._now(), self._release)
            self._held.append(event)
            return
        self._release()
        super()._emit(event)

    def _release(self) -> None:
        if not self._held or self._half_open():
            if self._held and self._held_for is self._lost and not self._lost.is_set():
                self._later(None, self._half_open_until - self._now(), self._release)  # the link went silent again
            return
        held, self._held = self._held, []
        if self._held_for is self._lost and self._link and not self._lost.is_set():
            for event in held:
                super()._emit(event)

    def restart(self, down_for: float = 2.0) -> None:
        live = [c.attempt_id for c in self._calls.values() if c.phase != "done"]
        self.trace(f"fault pbx_restart calls={len(live)} down={down_for:.1f}s")
        self.cut_by_restart.update(live)
        super().restart(down_for)

    def live_calls(self) -> int:
        return sum(1 for c in self._calls.values() if c.phase != "done")

    def busy_agents(self) -> list[str]:
        return [i for i, phone in self.phones.items() if phone.call is not None]

    def up(self) -> bool:
        return self._up
