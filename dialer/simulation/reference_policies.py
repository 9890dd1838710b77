"""Reference dialers for the pacing benchmark: what ours is measured against.

Not the product's pacing: these are the yardsticks of issue 16, each a decision function
run by a small discrete-event loop with the same customers, agents, lines, grace time and
random draws as `dialer simulate` (same scenario, same seed, same order of draws, so the
progressive reference reproduces the simulator's progressive run exactly):

- `Progressive`: one call in flight per free agent.
- `AdaptiveDialLevel`: a VICIdial-style loop. Lines = dial level x logged-in agents; every
  `interval` seconds the level is lowered by `step` while the measured drop rate is above
  the aim, and raised by `step` while it is under and agents sit idle.
- `ProbabilityModel`: places the most calls for which the expected live answers in the
  next `horizon` seconds (binomial in the calls ringing and the new ones, answer rate
  measured so far) stay `z` standard deviations under the agents expected free by then
  (free now, plus busy agents finishing, their remaining time taken as exponential with the
  measured mean). `z` is its one knob; tuned in hindsight it is swept and the best kept.

Measured figures only (answer rate, mean talk plus wrap-up): nothing is known before the
first calls, and each dials progressively until `warm_up` attempts and 5 finished calls.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dialer.core.abandon import AbandonState, AbandonWindow
from dialer.core.outcomes import abandon_rate
from dialer.simulation.results import SimulationResult
from dialer.simulation.scenario import Scenario

_RESOLVE, _TALK_END, _WRAP_END, _GRACE_END, _LINE_FREE, _TICK, _FIRST_HOUR = range(7)
FIRST_HOUR = 3600.0
JUDGED_AFTER = 100


@dataclass(frozen=True, slots=True)
class View:
    """What a reference dialer sees at a decision."""

    now: float
    agents: int
    free: int
    busy_elapsed: tuple[float, ...]
    """Seconds since each busy agent's call was bridged (talk and wrap-up so far)."""
    ringing: int
    waiting: int
    lines: int
    abandon: AbandonState
    attempts: int
    live: int
    finished_calls: int
    mean_busy: float
    """Mean talk plus wrap-up of the calls finished so far (0 before any)."""


Decide = Callable[[View], int]


def progressive(view: View) -> int:
    return max(0, view.free - view.ringing - view.waiting)


@dataclass
class AdaptiveDialLevel:
    """VICIdial-style adaptive dial level (lines per logged-in agent)."""

    step: float = 0.1
    interval: float = 15.0
    aim: float = 0.02
    max_level: float = 8.0
    level: float = 1.0
    _next: float = 0.0

    def __call__(self, view: View) -> int:
        if view.now >= self._next:
            self._next = view.now + self.interval
            if view.abandon.answered and view.abandon.rate > self.aim:
                self.level = max(1.0, self.level - self.step)
            elif view.free > 0:
                self.level = min(self.max_level, self.level + self.step)
        if view.abandon.exhausted():
            return progressive(view)  # the same hard rule every dialer obeys
        return max(0, math.floor(self.level * view.agents) - view.lines)

    def label(self) -> str:
        return f"step {self.step:g}, every {self.interval:g} s, aim {self.aim:.2%}"


@dataclass
class ProbabilityModel:
    z: float = 1.0
    horizon: float = 25.0
    warm_up: int = 30

    def __call__(self, view: View) -> int:
        base = progressive(view)
        if view.abandon.exhausted() or view.attempts < self.warm_up or view.finished_calls < 5 or view.live < 5:
            return base
        p = view.live / view.attempts
        leave = 1.0 - math.exp(-self.horizon / max(view.mean_busy, 1.0))
        supply = view.free + leave * len(view.busy_elapsed) - view.waiting
        supply_var = leave * (1.0 - leave) * len(view.busy_elapsed)
        low, high = 0, max(base, 4 * view.agents + 10)

        def fits(k: int) -> bool:
            n = view.ringing + k
            return n * p + self.z * math.sqrt(n * p * (1.0 - p) + supply_var) <= supply + 1e-9

        if fits(high):
            return high
        if not fits(low):
            return base
        while high - low > 1:
            middle = (low + high) // 2
            if fits(middle):
                low = middle
            else:
                high = middle
        return max(base, low)

    def label(self) -> str:
        return f"z {self.z:g}"


def vicidial_grid(aims: tuple[float, ...]) -> list[AdaptiveDialLevel]:
    """About 60 settings of the adaptive loop: step x interval x aim."""
    return [
        AdaptiveDialLevel(step=step, interval=interval, aim=aim)
        for step in (0.02, 0.05, 0.1, 0.2, 0.4)
        for interval in (5.0, 15.0, 30.0, 60.0)
        for aim in aims
    ]


MODEL_KNOB = (-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
"""The probability model's margin, swept when it is tuned in hindsight."""


@dataclass(slots=True)
class _Agent:
    bridged_at: float = 0.0
    wrapup_at: float | None = None


@dataclass
class _Run:
    scenario: Scenario
    decide: Decide
    name: str
    heap: list[tuple[float, int, int, int]] = field(default_factory=list)

    def run(self) -> SimulationResult:
        sc = self.scenario
        rng = random.Random(sc.seed)
        self.rng = rng
        c = sc.customers
        self.draw_answer = c.time_to_answer.sampler(rng)
        self.draw_busy = c.busy_after.sampler(rng)
        self.draw_talk = sc.talk.sampler(rng)
        self.draw_wrapup = sc.wrapup.sampler(rng)
        self.window = AbandonWindow(window=sc.abandon_window)
        self.seq = 0
        self.agents = [_Agent() for _ in range(sc.agents)]
        self.free: deque[int] = deque(range(sc.agents))
        self.busy: dict[int, _Agent] = {}
        self.ringing: dict[int, float] = {}
        self.waiting: dict[int, float] = {}
        self.talk_of: dict[int, float] = {}
        self.will_answer: set[int] = set()
        self.lines = self.next_call = self.attempts = self.connects = self.abandoned = self.live = 0
        self.busy_seconds = self.busy_total = 0.0
        self.finished = 0
        self.line_area = self.last_change = 0.0
        self.peak_lines = self.events = 0
        self.first_hour_busy: float | None = None
        self.worst = 0.0
        end = sc.duration
        self._push(0.0, _TICK, 0)
        self._push(min(FIRST_HOUR, end), _FIRST_HOUR, 0)
        handlers = {
            _RESOLVE: self._resolve,
            _TALK_END: self._talk_end,
            _WRAP_END: self._wrap_end,
            _GRACE_END: self._grace_end,
            _LINE_FREE: lambda now, _: self._set_lines(now, -1),
            _TICK: self._tick,
            _FIRST_HOUR: self._first_hour,
        }
        heap = self.heap
        while heap and heap[0][0] <= end:
            now, kind, _, ref = heapq.heappop(heap)
            self.events += 1
            handlers[kind](now, ref)
        self._set_lines(end, 0)
        for agent in self.busy.values():
            self.busy_seconds += end - agent.bridged_at
        return self._result(end)

    def _push(self, at: float, kind: int, ref: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, ref))

    def _set_lines(self, now: float, delta: int) -> None:
        self.line_area += self.lines * (now - self.last_change)
        self.last_change = now
        self.lines += delta
        self.peak_lines = max(self.peak_lines, self.lines)

    def _first_hour(self, now: float, _: int) -> None:
        self.first_hour_busy = self.busy_seconds + sum(now - a.bridged_at for a in self.busy.values())

    def _record_live(self, now: float, *, abandoned: bool) -> None:
        self.window.record(now, abandoned=abandoned)
        live = self.connects + self.abandoned
        if live >= JUDGED_AFTER:
            self.worst = max(self.worst, abandon_rate(self.abandoned, live))

    def _tick(self, now: float, _: int) -> None:
        sc = self.scenario
        self._push(now + sc.tick, _TICK, 0)
        if not self.agents:
            return
        view = View(
            now=now,
            agents=len(self.agents),
            free=len(self.free),
            busy_elapsed=tuple(now - a.bridged_at for a in self.busy.values()),
            ringing=len(self.ringing),
            waiting=len(self.waiting),
            lines=self.lines,
            abandon=self.window.state(now, limit=sc.pacing.abandon_limit),
            attempts=self.attempts - len(self.ringing),
            live=self.live,
            finished_calls=self.finished,
            mean_busy=self.busy_total / self.finished if self.finished else 0.0,
        )
        room = sc.pacing.max_lines - self.lines
        for _ in range(max(0, min(room, self.decide(view)))):
            self._place(now)

    def _place(self, now: float) -> None:
        call = self.next_call
        self.next_call += 1
        self.attempts += 1
        self.ringing[call] = now
        self._set_lines(now, +1)
        c = self.scenario.customers
        u = self.rng.random()
        if u < c.live_answer:
            answer_in = self.draw_answer()
            if answer_in < c.ring_timeout:
                self.will_answer.add(call)
                at = now + answer_in
            else:
                at = now + c.ring_timeout
        elif u < c.live_answer + c.busy:
            at = now + min(self.draw_busy(), c.ring_timeout)
        else:
            at = now + c.ring_timeout
        self._push(at, _RESOLVE, call)

    def _resolve(self, now: float, call: int) -> None:
        self.ringing.pop(call)
        if call in self.will_answer:
            self.will_answer.discard(call)
            self.live += 1
            if self.free:
                self._bridge(now, self.free.popleft(), call)
            else:
                self.waiting[call] = now
                self._push(now + self.scenario.grace, _GRACE_END, call)
        else:
            self._set_lines(now, -1)

    def _grace_end(self, now: float, call: int) -> None:
        if self.waiting.pop(call, None) is None:
            return
        self.abandoned += 1
        self._record_live(now, abandoned=True)
        if self.scenario.abandon_message > 0:
            self._push(now + self.scenario.abandon_message, _LINE_FREE, call)
        else:
            self._set_lines(now, -1)

    def _bridge(self, now: float, index: int, call: int) -> None:
        agent = self.agents[index]
        self.connects += 1
        self._record_live(now, abandoned=False)
        agent.bridged_at = now
        agent.wrapup_at = None
        self.busy[index] = agent
        talk = self.draw_talk()
        self.talk_of[index] = talk
        self._push(now + talk, _TALK_END, index)

    def _talk_end(self, now: float, index: int) -> None:
        self.talk_of.pop(index)
        self._set_lines(now, -1)
        self.agents[index].wrapup_at = now
        self._push(now + self.draw_wrapup(), _WRAP_END, index)

    def _wrap_end(self, now: float, index: int) -> None:
        agent = self.agents[index]
        self.busy_seconds += now - agent.bridged_at
        self.busy_total += now - agent.bridged_at
        self.finished += 1
        del self.busy[index]
        agent.wrapup_at = None
        if self.waiting:
            call = next(iter(self.waiting))
            del self.waiting[call]
            self._bridge(now, index, call)
        else:
            self.free.append(index)

    def _result(self, end: float) -> SimulationResult:
        n = len(self.agents)
        agent_seconds = n * end
        live = self.connects + self.abandoned
        first_hour = min(FIRST_HOUR, end)
        first_busy = self.first_hour_busy if self.first_hour_busy is not None else self.busy_seconds
        return SimulationResult(
            scenario=self.scenario.name,
            mode=self.name,
            agents=n,
            hours=self.scenario.hours,
            seed=self.scenario.seed,
            occupancy=self.busy_seconds / agent_seconds if agent_seconds else 0.0,
            abandon_rate=abandon_rate(self.abandoned, live),
            first_hour_occupancy=first_busy / (n * first_hour) if n else 0.0,
            worst_running_abandon_rate=self.worst,
            attempts=self.attempts,
            live_answered=live,
            abandoned=self.abandoned,
            connects=self.connects,
            connects_per_agent_hour=self.connects / (agent_seconds / 3600.0) if agent_seconds else 0.0,
            mean_agent_wait=0.0,
            mean_lines=self.line_area / end if end else 0.0,
            peak_lines=self.peak_lines,
            events=self.events,
            wall_seconds=0.0,
        )


def simulate_reference(scenario: Scenario, decide: Decide, name: str) -> SimulationResult:
    """Run `scenario` with a reference dialer's decision function instead of the product's pacing."""
    return _Run(scenario, decide, name).run()
