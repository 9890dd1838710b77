"""A dedicated key-account team next to a general team, simulated (issue 16 item 4).

Key customers become due at known moments (revisits, callbacks, a list being
worked); general customers are dialed by the daemon's own campaign core
(`dialer.core.campaign.CampaignCore`, fed the call records the daemon gets) on
the agents of the general queue. The reserved tier follows the daemon's rules,
the core's too: a key call is placed only against a free dedicated agent who is
not lent and holds a claim on them until bridged or ended; with lending on, the
team is lent to the general queue by `dialer.core.lending.lend_moves`. Queue behaviour mirrors
the dialplan: a key customer waits `fallback_after` seconds in the dedicated
queue, then joins the general queue ahead of everyone there, and hears the
abandon message after `max_wait`; a general customer waits `grace` seconds; in
the general queue general agents are offered a call before lent ones (penalty 1).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from dialer.core import records as r
from dialer.core.campaign import AgentView, CallToPlace, CampaignCore, CampaignView, CoreSettings, TierRules
from dialer.core.lending import TeamMember, agents_needed, lend_moves
from dialer.core.originate import CampaignDialplan
from dialer.core.outcomes import abandon_rate
from dialer.core.pacing import PacingMode, PacingPolicy
from dialer.core.routing import TierRoute

KEY_QUEUE, GENERAL_QUEUE = "key", "general"
# Q.850 causes of the simulated hangups, as Asterisk reports them.
_NORMAL, _NO_ANSWER = 16, 19


@dataclass(frozen=True)
class TeamScenario:
    """The real PBX case of the issue: 2 of 8 agents on key accounts."""

    key_agents: int = 2
    general_agents: int = 6
    hours: float = 8.0
    seed: int = 1
    tick: float = 0.5
    # general customers
    live_answer: float = 0.30
    answer_mean: float = 8.0
    talk_mean: float = 120.0
    wrapup_mean: float = 10.0
    ring_timeout: float = 25.0
    grace: float = 2.0
    # key customers
    key_due_per_hour: float = 6.0
    key_answer: float = 0.8
    key_talk_mean: float = 240.0
    fallback_after: float = 1.0
    max_wait: float = 20.0
    lend_ahead: float = 60.0
    lend: bool = True
    mode: PacingMode = PacingMode.predictive


@dataclass
class TeamResult:
    lend: bool
    seed: int
    key_occupancy: float
    general_occupancy: float
    key_calls: int
    key_answered: int
    key_longest_wait: float
    """Seconds from a key customer's answer to an agent (0: bridged at once)."""
    key_waits_past_fallback: int
    key_abandoned: int
    key_mean_delay: float
    """Seconds from a key lead falling due to its call being placed."""
    key_max_delay: float
    general_connects: int
    general_abandon_rate: float
    key_served_by_general: int = 0
    general_served_by_key: int = 0


@dataclass(slots=True)
class _Agent:
    id: str
    key: bool
    lent: bool = False
    busy_until: float | None = None  # None: free
    claimed: bool = False
    busy_seconds: float = 0.0
    started: float = 0.0
    talk_until: float = 0.0  # then wrap-up until busy_until

    def view(self, now: float) -> AgentView:
        queues = frozenset({KEY_QUEUE, GENERAL_QUEUE} if self.lent else {KEY_QUEUE} if self.key else {GENERAL_QUEUE})
        if self.busy_until is None:
            return AgentView(self.id, free=True, queues=queues)
        if now < self.talk_until:
            return AgentView(self.id, free=False, busy_since=self.started, queues=queues)
        return AgentView(self.id, free=False, wrapup_since=self.talk_until, queues=queues)


@dataclass(slots=True)
class _Call:
    id: str
    key: bool
    placed: float
    due: float = 0.0
    answered: float | None = None
    claim: _Agent | None = None
    done: bool = False
    in_general: bool = False  # a key customer after fallback_after


_ANSWER, _GRACE, _FALLBACK, _HANGUP, _FREE, _TICK = range(6)


@dataclass
class _Run:
    s: TeamScenario
    heap: list[tuple[float, int, int, object]] = field(default_factory=list)
    seq: int = 0

    def push(self, at: float, kind: int, ref: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, ref))


def team_settings(s: TeamScenario, agents: int) -> CoreSettings:
    """The campaign core of the team's campaign: key customers wait for the dedicated team."""
    return CoreSettings(
        policy=PacingPolicy(mode=s.mode, max_lines=10 * agents, ratio=2.0, grace=s.grace),
        general_queue=GENERAL_QUEUE,
        agent_wait=max(1, round(s.grace)),
        ring_timeout=s.ring_timeout,
        tiers=TierRules(
            lowest="general",
            reserved=frozenset({"key"}),
            routes={"key": TierRoute(queue=KEY_QUEUE, fallback_after=round(s.fallback_after), max_wait=round(s.max_wait))},
            wait_for_dedicated=frozenset({"key"}),
        ),
    )


def simulate_team(s: TeamScenario) -> TeamResult:
    rng = random.Random(s.seed)
    run = _Run(s)
    end = s.hours * 3600.0
    agents = [_Agent(f"k{i}", key=True) for i in range(s.key_agents)] + [
        _Agent(f"g{i}", key=False) for i in range(s.general_agents)
    ]
    key_team = [a for a in agents if a.key]
    settings = team_settings(s, len(agents))
    core = CampaignCore(settings, wrapup_measured=True)
    dialplan = CampaignDialplan(campaign="team", queue=GENERAL_QUEUE, agent_wait=settings.agent_wait)
    # Key leads fall due at known moments (the hopper's next_attempt_at).
    due_at: deque[float] = deque()
    t = 0.0
    while s.key_due_per_hour > 0:
        t += rng.expovariate(s.key_due_per_hour / 3600.0)
        if t >= end:
            break
        due_at.append(t)
    ringing: dict[str, _Call] = {}
    general_queue: deque[_Call] = deque()  # general customers waiting, oldest first
    key_waiting: deque[_Call] = deque()  # key customers waiting (dedicated, then general queue)
    result = TeamResult(s.lend, s.seed, 0, 0, 0, 0, 0.0, 0, 0, 0.0, 0.0, 0, 0.0)
    delays: list[float] = []
    general_live = general_abandoned = 0
    next_id = 0

    def lognormal(mean: float) -> float:
        return rng.lognormvariate(0, 0.6) * mean / 1.197  # E[lognormal(0, 0.6)] = e^0.18

    def record(item: r.CallRecord) -> None:
        core.observe(item)
        if isinstance(item, r.ChannelHangup):
            core.settle(item.at)

    def bridge(now: float, agent: _Agent, call: _Call) -> None:
        nonlocal general_live
        call.done = True
        if call.claim is not None:
            call.claim.claimed = False
            call.claim = None
        assert call.answered is not None
        record(r.AgentConnected(call.id, now, KEY_QUEUE if agent.key and not call.in_general else GENERAL_QUEUE,
                                agent.id))
        if call.key:
            wait = now - call.answered
            result.key_longest_wait = max(result.key_longest_wait, wait)
            if wait > s.fallback_after + 1e-9:
                result.key_waits_past_fallback += 1
            if not agent.key:
                result.key_served_by_general += 1
            talk = lognormal(s.key_talk_mean)
        else:
            general_live += 1
            result.general_connects += 1
            if agent.key:
                result.general_served_by_key += 1
            talk = lognormal(s.talk_mean)
        wrap = rng.expovariate(1 / s.wrapup_mean) if s.wrapup_mean > 0 else 0.0
        agent.talk_until = now + talk
        agent.busy_until = now + talk + wrap
        agent.started = now
        run.push(agent.talk_until, _HANGUP, call)
        run.push(agent.busy_until, _FREE, agent)

    def serve_next(now: float, agent: _Agent) -> None:
        """A free agent takes whoever its queues hold: key customers first (priority)."""
        for call in list(key_waiting):
            if agent.key or call.in_general:
                key_waiting.remove(call)
                bridge(now, agent, call)
                return
        if (not agent.key or agent.lent) and general_queue:
            bridge(now, agent, general_queue.popleft())

    def free_agent(now: float, *, key_call: _Call | None) -> _Agent | None:
        if key_call is not None:
            # The dedicated queue: the claimed agent first, then any free team member.
            if key_call.claim is not None and key_call.claim.busy_until is None:
                return key_call.claim
            team = [a for a in key_team if a.busy_until is None and not a.claimed]
            return team[0] if team else None
        general = [a for a in agents if not a.key and a.busy_until is None]
        # Asterisk knows nothing of claims: a lent agent is anyone's in the general queue.
        lent = [a for a in key_team if a.lent and a.busy_until is None]
        return (general or lent or [None])[0]

    def on_tick(now: float, _: object) -> None:
        nonlocal next_id
        run.push(now + s.tick, _TICK, None)
        core.settle(now)
        due_now = sum(1 for d in due_at if d <= now)
        if s.lend:
            soon = sum(1 for d in due_at if now < d <= now + s.lend_ahead)
            team = [TeamMember(a.id, a.lent, a.busy_until is None) for a in key_team]
            needed = agents_needed(
                reserved_in_flight=core.claims().dedicated,
                due_now=min(due_now, len(team)),
                due_soon=min(soon, len(team)),
            )
            moves = lend_moves(team, needed=needed)
            for a in key_team:
                if a.id in moves.lend:
                    a.lent = True
                    if a.busy_until is None:
                        serve_next(now, a)
                elif a.id in moves.recall:
                    a.lent = False
        view = CampaignView({
            KEY_QUEUE: tuple(a.view(now) for a in key_team),
            GENERAL_QUEUE: tuple(a.view(now) for a in agents if not a.key or a.lent),
        })
        # The daemon's tick: reserved tier first, one call per claimable dedicated agent
        # (wait_for_dedicated); then the other tiers as the pacing says.
        lines_left = settings.policy.max_lines - core.live_counts().lines
        room = core.hold(core.reserved_room(view, lines_left), due=due_now > 0, lines_left=lines_left)
        keys = min(room.to_lease, due_now)
        wanted = max(0, core.decide(view, now, lines_left=lines_left, reserved_leased=keys, room=room))
        leases = [(str(n), "key" if n < next_id + keys else "general") for n in range(next_id, next_id + keys + wanted)]
        next_id += keys + wanted
        routes = core.route(leases, view, room)
        calls = []
        for attempt_id, tier in leases:
            routing = routes[attempt_id]
            if routing is None:
                continue  # the lead stays due for a later tick
            if tier == "key":
                agent = next(a for a in key_team if a.busy_until is None and not a.claimed and not a.lent)
                agent.claimed = True
                due = due_at.popleft()
                delays.append(now - due)
                calls.append(_Call(attempt_id, key=True, placed=now, due=due, claim=agent))
            else:
                calls.append(_Call(attempt_id, key=False, placed=now))
        core.place((CallToPlace(c.id, int(c.id), "") for c in calls), now, dialplan)
        for call in calls:
            place(now, call)

    def place(now: float, call: _Call) -> None:
        ringing[call.id] = call
        answers = rng.random() < (s.key_answer if call.key else s.live_answer)
        ring = rng.expovariate(1 / s.answer_mean) + 1.0
        if call.key:
            result.key_calls += 1
        if answers and ring < s.ring_timeout:
            run.push(now + ring, _ANSWER, (call.id, True))
        else:
            run.push(now + s.ring_timeout, _ANSWER, (call.id, False))

    def on_answer(now: float, ref: tuple[str, bool]) -> None:
        attempt_id, answered = ref
        call = ringing.pop(attempt_id)
        if not answered:
            record(r.ChannelHangup(call.id, now, _NO_ANSWER, None))
            if call.claim is not None:
                call.claim.claimed = False
                call.claim = None
            return
        call.answered = now
        record(r.QueueJoined(call.id, now, KEY_QUEUE if call.key else GENERAL_QUEUE))
        if call.key:
            result.key_answered += 1
        agent = free_agent(now, key_call=call if call.key else None)
        if agent is not None:
            bridge(now, agent, call)
        elif call.key:
            key_waiting.append(call)
            run.push(now + s.fallback_after, _FALLBACK, call)
            run.push(now + s.max_wait, _GRACE, call)
        else:
            general_queue.append(call)
            run.push(now + s.grace, _GRACE, call)

    def on_fallback(now: float, call: _Call) -> None:
        if call.done:
            return
        call.in_general = True
        agent = free_agent(now, key_call=None)
        if agent is not None:
            key_waiting.remove(call)
            bridge(now, agent, call)

    def on_grace(now: float, call: _Call) -> None:
        nonlocal general_abandoned, general_live
        if call.done:
            return
        call.done = True
        if call.claim is not None:
            call.claim.claimed = False
            call.claim = None
        if call.key:
            key_waiting.remove(call)
            result.key_abandoned += 1
        else:
            general_queue.remove(call)
            general_abandoned += 1
            general_live += 1
        record(r.DialerAbandoned(call.id, now))
        record(r.ChannelHangup(call.id, now, _NORMAL, None))

    def on_hangup(now: float, call: _Call) -> None:
        record(r.ChannelHangup(call.id, now, _NORMAL, None))

    def on_free(now: float, agent: _Agent) -> None:
        if agent.busy_until is None or agent.busy_until > now + 1e-9:
            return
        core.wrapup_ended(agent.busy_until - agent.talk_until)
        agent.busy_seconds += now - agent.started
        agent.busy_until = None
        serve_next(now, agent)

    run.push(0.0, _TICK, None)
    handlers = {
        _ANSWER: on_answer, _GRACE: on_grace, _FALLBACK: on_fallback, _HANGUP: on_hangup, _FREE: on_free,
        _TICK: on_tick,
    }
    while run.heap and run.heap[0][0] <= end:
        now, kind, _, ref = heapq.heappop(run.heap)
        handlers[kind](now, ref)  # type: ignore[operator]
    for a in agents:
        if a.busy_until is not None:
            a.busy_seconds += end - a.started
    result.key_occupancy = sum(a.busy_seconds for a in key_team) / (len(key_team) * end) if key_team else 0.0
    general = [a for a in agents if not a.key]
    result.general_occupancy = sum(a.busy_seconds for a in general) / (len(general) * end) if general else 0.0
    result.general_abandon_rate = abandon_rate(general_abandoned, general_live)
    result.key_mean_delay = sum(delays) / len(delays) if delays else 0.0
    result.key_max_delay = max(delays, default=0.0)
    return result
