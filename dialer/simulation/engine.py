"""A discrete-event simulation of one campaign, driving the daemon's own pacing code.

Events sit in a heap keyed by virtual time; nothing ticks except the pacing decision,
which runs every `scenario.tick` seconds as the daemon's main loop does. Agents take
the customer who has waited longest; a customer not bridged within `grace` seconds
hears the abandon message. The run is fully determined by the scenario and its seed.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from dataclasses import dataclass

from dialer.core.abandon import AbandonWindow
from dialer.core.estimators import CampaignStats
from dialer.core.outcomes import Outcome as AttemptOutcome, abandon_rate
from dialer.core.pacing import BusyAgent, PacingMode, PacingSnapshot, calls_to_place
from dialer.simulation.results import SimulationResult
from dialer.simulation.scenario import Scenario

# Event kinds, in the order they are handled when they fall on the same instant.
_RESOLVE, _TALK_END, _WRAP_END, _GRACE_END, _LINE_FREE, _TICK, _FIRST_HOUR = range(7)

FIRST_HOUR = 3600.0
JUDGED_AFTER = 100
"""The running abandon rate is judged once this many live answers are in: before that one
abandon is already several per cent, after it a burst at the start still shows."""


@dataclass(slots=True)
class _Agent:
    index: int
    bridged_at: float = 0.0
    wrapup_at: float | None = None
    free_since: float = 0.0


def simulate(scenario: Scenario, mode: PacingMode | None = None) -> SimulationResult:
    """Run `scenario` with its own pacing mode, or with `mode` instead (for a baseline)."""
    return _Run(scenario, mode).run()


class _Run:
    def __init__(self, scenario: Scenario, mode: PacingMode | None) -> None:
        self.scenario = scenario
        self.policy = scenario.pacing.policy(mode=mode, grace=scenario.grace)
        rng = random.Random(scenario.seed)
        self.rng = rng
        customers = scenario.customers
        self.draw_answer = customers.time_to_answer.sampler(rng)
        self.draw_busy = customers.busy_after.sampler(rng)
        self.draw_talk = scenario.talk.sampler(rng)
        self.draw_wrapup = scenario.wrapup.sampler(rng)
        self.stats = CampaignStats(
            window=scenario.estimator.window, refresh_every=scenario.estimator.refresh_every
        )
        self.window = AbandonWindow(window=scenario.abandon_window)
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.agents = [_Agent(i) for i in range(scenario.agents)]
        self.free: deque[int] = deque(range(scenario.agents))  # longest idle first
        self.busy: dict[int, _Agent] = {}
        self.ringing: dict[int, float] = {}  # call id -> placed at
        self.waiting: dict[int, float] = {}  # call id -> answered at, oldest first
        self.talk_of: dict[int, float] = {}  # agent index -> this call's talk time
        self.will_answer: set[int] = set()  # ringing calls a live person will pick up
        self.lines = 0
        self.next_call = 0
        # measurements
        self.busy_seconds = 0.0
        self.attempts = 0
        self.connects = 0
        self.abandoned = 0
        self.waits_total = 0.0
        self.waits_count = 0
        self.line_area = 0.0
        self.last_change = 0.0
        self.peak_lines = 0
        self.events = 0
        self.first_hour_busy: float | None = None
        self.worst_running_rate = 0.0

    def _push(self, at: float, kind: int, ref: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, ref))

    def _set_lines(self, now: float, delta: int) -> None:
        self.line_area += self.lines * (now - self.last_change)
        self.last_change = now
        self.lines += delta
        if self.lines > self.peak_lines:
            self.peak_lines = self.lines

    def run(self) -> SimulationResult:
        started = time.perf_counter()
        end = self.scenario.duration
        self._push(0.0, _TICK, 0)
        self._push(min(FIRST_HOUR, end), _FIRST_HOUR, 0)
        handlers = {
            _RESOLVE: self._resolve,
            _TALK_END: self._talk_end,
            _WRAP_END: self._wrap_end,
            _GRACE_END: self._grace_end,
            _LINE_FREE: self._line_free,
            _TICK: self._tick,
            _FIRST_HOUR: self._first_hour,
        }
        heap = self.heap
        while heap and heap[0][0] <= end:
            now, kind, _, ref = heapq.heappop(heap)
            self.events += 1
            handlers[kind](now, ref)
        self._set_lines(end, 0)
        # Calls still in progress at the end count up to the end only.
        for agent in self.busy.values():
            self.busy_seconds += end - agent.bridged_at
        return self._result(end, time.perf_counter() - started)

    def _first_hour(self, now: float, _: int) -> None:
        self.first_hour_busy = self.busy_seconds + sum(now - a.bridged_at for a in self.busy.values())

    def _record_live(self, now: float, *, abandoned: bool) -> None:
        self.window.record(now, abandoned=abandoned)
        live = self.connects + self.abandoned
        if live >= JUDGED_AFTER:
            self.worst_running_rate = max(self.worst_running_rate, abandon_rate(self.abandoned, live))

    # --- pacing -------------------------------------------------------------------------

    def _tick(self, now: float, _: int) -> None:
        self._push(now + self.scenario.tick, _TICK, 0)
        busy = tuple(
            BusyAgent(
                elapsed=now - a.bridged_at,
                in_wrapup=a.wrapup_at is not None,
                wrapup_elapsed=None if a.wrapup_at is None else now - a.wrapup_at,
            )
            for a in self.busy.values()
        )
        ringing = tuple(now - placed for placed in self.ringing.values())
        # Talks and rings still going on are censored observations for the estimates.
        talking = (a.elapsed for a in busy if not a.in_wrapup)
        snapshot = PacingSnapshot(
            agents_logged_in=len(self.agents),
            agents_free=len(self.free),
            busy_agents=busy,
            ringing=ringing,
            waiting_for_agent=len(self.waiting),
            lines_in_use=self.lines,
            estimates=self.stats.estimates(
                min_samples=self.scenario.estimator.min_samples, talking=talking, ringing=ringing
            ),
            abandon=self.window.state(now, limit=self.policy.abandon_limit),
        )
        for _ in range(calls_to_place(snapshot, self.policy)):
            self._place(now)

    def _place(self, now: float) -> None:
        call = self.next_call
        self.next_call += 1
        self.attempts += 1
        self.ringing[call] = now
        self._set_lines(now, +1)
        customers = self.scenario.customers
        u = self.rng.random()
        if u < customers.live_answer:
            answer_in = self.draw_answer()
            if answer_in < customers.ring_timeout:
                self.will_answer.add(call)
                at = now + answer_in
            else:
                at = now + customers.ring_timeout  # would have answered, too late
        elif u < customers.live_answer + customers.busy:
            at = now + min(self.draw_busy(), customers.ring_timeout)
        else:
            at = now + customers.ring_timeout
        self._push(at, _RESOLVE, call)

    # --- customers ----------------------------------------------------------------------

    def _resolve(self, now: float, call: int) -> None:
        placed = self.ringing.pop(call)
        customers = self.scenario.customers
        ring = now - placed
        if call in self.will_answer:
            self.will_answer.discard(call)
            self.stats.observe_attempt(AttemptOutcome.answered, ring)
            if self.free:
                self._bridge(now, self.free.popleft(), call)
            else:
                self.waiting[call] = now
                self._push(now + self.scenario.grace, _GRACE_END, call)
        else:
            outcome = AttemptOutcome.no_answer if ring >= customers.ring_timeout else AttemptOutcome.busy
            self.stats.observe_attempt(outcome, ring)
            self._set_lines(now, -1)

    def _grace_end(self, now: float, call: int) -> None:
        if self.waiting.pop(call, None) is None:
            return  # bridged in time
        self.abandoned += 1
        self._record_live(now, abandoned=True)
        if self.scenario.abandon_message > 0:
            self._push(now + self.scenario.abandon_message, _LINE_FREE, call)
        else:
            self._set_lines(now, -1)

    def _line_free(self, now: float, _: int) -> None:
        self._set_lines(now, -1)

    # --- agents -------------------------------------------------------------------------

    def _bridge(self, now: float, index: int, call: int) -> None:
        agent = self.agents[index]
        self.waits_total += now - agent.free_since
        self.waits_count += 1
        self.connects += 1
        self._record_live(now, abandoned=False)
        agent.bridged_at = now
        agent.wrapup_at = None
        self.busy[index] = agent
        talk = self.draw_talk()
        self.talk_of[index] = talk
        self._push(now + talk, _TALK_END, index)

    def _talk_end(self, now: float, index: int) -> None:
        agent = self.agents[index]
        self.stats.observe_talk(self.talk_of.pop(index))
        self._set_lines(now, -1)
        agent.wrapup_at = now
        self._push(now + self.draw_wrapup(), _WRAP_END, index)

    def _wrap_end(self, now: float, index: int) -> None:
        agent = self.agents[index]
        assert agent.wrapup_at is not None
        self.stats.observe_wrapup(now - agent.wrapup_at)
        self.busy_seconds += now - agent.bridged_at
        del self.busy[index]
        agent.wrapup_at = None
        agent.free_since = now
        if self.waiting:
            call = next(iter(self.waiting))
            del self.waiting[call]
            self._bridge(now, index, call)
        else:
            self.free.append(index)

    # --- result -------------------------------------------------------------------------

    def _result(self, end: float, wall: float) -> SimulationResult:
        agent_seconds = len(self.agents) * end
        live = self.connects + self.abandoned
        first_hour = min(FIRST_HOUR, end)
        first_hour_busy = self.first_hour_busy if self.first_hour_busy is not None else self.busy_seconds
        return SimulationResult(
            scenario=self.scenario.name,
            mode=self.policy.mode.value,
            agents=len(self.agents),
            hours=self.scenario.hours,
            seed=self.scenario.seed,
            occupancy=self.busy_seconds / agent_seconds if agent_seconds else 0.0,
            abandon_rate=abandon_rate(self.abandoned, live),
            first_hour_occupancy=first_hour_busy / (len(self.agents) * first_hour) if self.agents else 0.0,
            worst_running_abandon_rate=self.worst_running_rate,
            attempts=self.attempts,
            live_answered=live,
            abandoned=self.abandoned,
            connects=self.connects,
            connects_per_agent_hour=self.connects / (agent_seconds / 3600.0) if agent_seconds else 0.0,
            mean_agent_wait=self.waits_total / self.waits_count if self.waits_count else 0.0,
            mean_lines=self.line_area / end if end else 0.0,
            peak_lines=self.peak_lines,
            events=self.events,
            wall_seconds=round(wall, 3),
        )
