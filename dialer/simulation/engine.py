"""A discrete-event simulation of one campaign, driving the daemon's own campaign core.

Events sit in a heap keyed by virtual time; nothing ticks except the pacing decision,
which runs every `scenario.tick` seconds as the daemon's main loop does. Every decision
and all learning are `dialer.core.campaign.CampaignCore`'s, fed the call records the
daemon would get from Asterisk (`SimulatedCampaign`, the runner's read -> decide ->
write without the I/O). Agents take the customer who has waited longest; a customer not
bridged within `grace` seconds hears the abandon message. The run is fully determined
by the scenario and its seed.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from dialer.core import records as r
from dialer.core.campaign import (
    AgentView,
    CallToPlace,
    CampaignCore,
    CampaignView,
    CoreSettings,
    Finished,
    PlacedCall,
    TierRules,
)
from dialer.core.originate import CampaignDialplan
from dialer.core.outcomes import abandon_rate
from dialer.core.pacing import PacingMode
from dialer.simulation.results import SimulationResult
from dialer.simulation.scenario import Scenario

# Event kinds, in the order they are handled when they fall on the same instant.
_RESOLVE, _TALK_END, _WRAP_END, _GRACE_END, _LINE_FREE, _TICK, _FIRST_HOUR = range(7)

FIRST_HOUR = 3600.0
JUDGED_AFTER = 100
"""The running abandon rate is judged once this many live answers are in: before that one
abandon is already several per cent, after it a burst at the start still shows."""

QUEUE = "simulated"
# Q.850 causes of the simulated hangups, as Asterisk reports them.
_NORMAL, _BUSY, _NO_ANSWER = 16, 17, 19


def scenario_settings(scenario: Scenario, mode: PacingMode | None = None) -> CoreSettings:
    """The campaign core's settings for a scenario: one queue, one tier, no reserved lead."""
    return CoreSettings(
        policy=scenario.pacing.policy(mode=mode, grace=scenario.grace),
        general_queue=QUEUE,
        agent_wait=max(1, round(scenario.grace)),
        ring_timeout=scenario.customers.ring_timeout,
        tiers=TierRules(),
        abandon_window=scenario.abandon_window,
        min_samples=scenario.estimator.min_samples,
        stats_window=scenario.estimator.window,
        stats_refresh=scenario.estimator.refresh_every,
    )


class SimulatedCampaign:
    """What `dialer.daemon.campaign_runner.CampaignRunner` does each tick and on each
    record, with leads that are always due and no I/O: the same core calls in the same
    order, so the simulation's decisions are the daemon's."""

    def __init__(
        self,
        settings: CoreSettings,
        dialplan: CampaignDialplan,
        *,
        wrapup_measured: bool = True,
        leads: int | None = None,
    ) -> None:
        self.core = CampaignCore(settings, wrapup_measured=wrapup_measured)
        self.dialplan = dialplan
        self.next_id = 0
        self.leads = leads
        """Leads in the list, each dialed once; None: an endless list the core is told nothing of."""
        if leads is not None:
            self.core.count_leads(leads)

    def tick(self, now: float, agents: Sequence[AgentView]) -> list[PlacedCall]:
        core = self.core
        core.settle(now)
        lines_left = core.settings.policy.max_lines - core.live_counts().lines
        leads_left = None if self.leads is None else max(0, self.leads - self.next_id)
        view = CampaignView({core.settings.general_queue: agents})
        room = core.reserved_room(view, lines_left)
        # Every simulated lead is of the lowest tier: no reserved one is ever due.
        room = core.hold(room, due=False, lines_left=lines_left)
        wanted = core.decide(view, now, lines_left=lines_left, room=room)
        if leads_left is not None:
            wanted = min(wanted, leads_left)
        if room.to_lease <= 0 and wanted <= 0:
            return []
        first = self.next_id
        self.next_id += wanted
        ids = [str(n) for n in range(first, first + wanted)]
        lowest = core.settings.tiers.lowest
        core.route([(attempt_id, lowest) for attempt_id in ids], view, room)
        return core.place((CallToPlace(attempt_id, int(attempt_id), "") for attempt_id in ids), now, self.dialplan)

    def record(self, record: r.CallRecord) -> list[Finished]:
        """Feed one call record; the attempts it finished (a hangup settles at once)."""
        self.core.observe(record)
        if isinstance(record, r.ChannelHangup):
            return self.core.settle(record.at)
        return []

    def wrapup_ended(self, seconds: float) -> None:
        self.core.wrapup_ended(seconds)


@dataclass(slots=True)
class _Agent:
    index: int
    view: AgentView
    interface: str
    bridged_at: float = 0.0
    wrapup_at: float | None = None
    free_since: float = 0.0
    call: str = ""


def simulate(scenario: Scenario, mode: PacingMode | None = None) -> SimulationResult:
    """Run `scenario` with its own pacing mode, or with `mode` instead (for a baseline)."""
    settings = scenario_settings(scenario, mode)
    dialplan = CampaignDialplan(campaign=scenario.name, queue=QUEUE, agent_wait=settings.agent_wait)
    return _Run(scenario, SimulatedCampaign(settings, dialplan, leads=scenario.leads)).run()


def simulate_campaign(scenario: Scenario, campaign: SimulatedCampaign, *, start: float = 0.0) -> SimulationResult:
    """Run `scenario`'s agents and customers against a campaign core set up by the caller
    (e.g. from a campaign file, as the daemon would), its clock starting at `start`."""
    return _Run(scenario, campaign, start).run()


class _Run:
    def __init__(self, scenario: Scenario, campaign: SimulatedCampaign, start: float = 0.0) -> None:
        self.scenario = scenario
        self.start = start
        self.campaign = campaign
        self.policy = campaign.core.settings.policy
        queue = campaign.core.settings.general_queue
        self.queue = queue
        rng = random.Random(scenario.seed)
        self.rng = rng
        customers = scenario.customers
        self.draw_answer = customers.time_to_answer.sampler(rng)
        self.draw_busy = customers.busy_after.sampler(rng)
        self.draw_talk = scenario.talk.sampler(rng)
        self.draw_wrapup = scenario.wrapup.sampler(rng)
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.agents = [
            _Agent(i, AgentView(f"a{i}", free=True), f"Local/a{i}", free_since=start) for i in range(scenario.agents)
        ]
        self.free: deque[int] = deque(range(scenario.agents))  # longest idle first
        self.busy: dict[int, _Agent] = {}
        self.waiting: dict[str, float] = {}  # call -> answered at, oldest first
        self.will_answer: set[str] = set()  # ringing calls a live person will pick up
        self.lines = 0
        # measurements
        self.busy_seconds = 0.0
        self.attempts = 0
        self.connects = 0
        self.abandoned = 0
        self.waits_total = 0.0
        self.waits_count = 0
        self.line_area = 0.0
        self.last_change = start
        self.peak_lines = 0
        self.events = 0
        self.first_hour_busy: float | None = None
        self.worst_running_rate = 0.0

    def _push(self, at: float, kind: int, ref: object) -> None:
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
        start = self.start
        end = start + self.scenario.duration
        self._push(start, _TICK, None)
        self._push(start + min(FIRST_HOUR, self.scenario.duration), _FIRST_HOUR, None)
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
            handlers[kind](now, ref)  # type: ignore[operator]
        self._set_lines(end, 0)
        # Calls still in progress at the end count up to the end only.
        for agent in self.busy.values():
            self.busy_seconds += end - agent.bridged_at
        return self._result(self.scenario.duration, time.perf_counter() - started)

    def _first_hour(self, now: float, _: object) -> None:
        self.first_hour_busy = self.busy_seconds + sum(now - a.bridged_at for a in self.busy.values())

    def _record_live(self, *, abandoned: bool) -> None:
        live = self.connects + self.abandoned
        if live >= JUDGED_AFTER:
            self.worst_running_rate = max(self.worst_running_rate, abandon_rate(self.abandoned, live))

    # --- pacing: the campaign core --------------------------------------------------------

    def _tick(self, now: float, _: object) -> None:
        self._push(now + self.scenario.tick, _TICK, None)
        for call in self.campaign.tick(now, tuple(a.view for a in self.agents)):
            self._place(now, call.attempt.id)

    def _place(self, now: float, call: str) -> None:
        self.attempts += 1
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

    def _resolve(self, now: float, call: str) -> None:
        if call in self.will_answer:
            self.will_answer.discard(call)
            self.campaign.record(r.QueueJoined(call, now, self.queue))
            if self.free:
                self._bridge(now, self.free.popleft(), call)
            else:
                self.waiting[call] = now
                self._push(now + self.scenario.grace, _GRACE_END, call)
        else:
            rang_out = now - self.campaign.core.attempts[call].dialed_at >= self.scenario.customers.ring_timeout
            self.campaign.record(r.ChannelHangup(call, now, _NO_ANSWER if rang_out else _BUSY, None))
            self._set_lines(now, -1)

    def _grace_end(self, now: float, call: str) -> None:
        if self.waiting.pop(call, None) is None:
            return  # bridged in time
        self.abandoned += 1
        self._record_live(abandoned=True)
        self.campaign.record(r.DialerAbandoned(call, now))
        if self.scenario.abandon_message > 0:
            self._push(now + self.scenario.abandon_message, _LINE_FREE, call)
        else:
            self._line_free(now, call)

    def _line_free(self, now: float, call: str) -> None:
        self.campaign.record(r.ChannelHangup(call, now, _NORMAL, None))
        self._set_lines(now, -1)

    # --- agents -------------------------------------------------------------------------

    def _bridge(self, now: float, index: int, call: str) -> None:
        agent = self.agents[index]
        self.waits_total += now - agent.free_since
        self.waits_count += 1
        self.connects += 1
        self._record_live(abandoned=False)
        self.campaign.record(r.AgentConnected(call, now, self.queue, agent.interface))
        agent.bridged_at = now
        agent.wrapup_at = None
        agent.call = call
        agent.view = AgentView(agent.view.id, free=False, busy_since=now)
        self.busy[index] = agent
        self._push(now + self.draw_talk(), _TALK_END, index)

    def _talk_end(self, now: float, index: int) -> None:
        agent = self.agents[index]
        self.campaign.record(r.ChannelHangup(agent.call, now, _NORMAL, None))
        self._set_lines(now, -1)
        agent.wrapup_at = now
        agent.view = AgentView(agent.view.id, free=False, wrapup_since=now)
        self._push(now + self.draw_wrapup(), _WRAP_END, index)

    def _wrap_end(self, now: float, index: int) -> None:
        agent = self.agents[index]
        assert agent.wrapup_at is not None
        self.campaign.wrapup_ended(now - agent.wrapup_at)
        self.busy_seconds += now - agent.bridged_at
        del self.busy[index]
        agent.wrapup_at = None
        agent.free_since = now
        agent.view = AgentView(agent.view.id, free=True)
        if self.waiting:
            call = next(iter(self.waiting))
            del self.waiting[call]
            self._bridge(now, index, call)
        else:
            self.free.append(index)

    # --- result -------------------------------------------------------------------------

    def _result(self, end: float, wall: float) -> SimulationResult:
        """`end`: the seconds simulated."""
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
