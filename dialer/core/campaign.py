"""One campaign's decisions, as one object both the daemon and `dialer simulate` run (pure).

`CampaignCore` holds what a campaign knows between ticks: its live attempts,
the statistics the pacing learns from, the abandon window, the AMD
false-positive count and the claims reserved-tier calls hold on agents. The
shell (`dialer.daemon.campaign_runner`, `dialer.simulation.engine`) reads the
world into a `CampaignView`, asks the core, and performs what it answers:

    room = core.reserved_room(view, lines_left)      # agents free for key calls
    room = core.hold(room, due=..., lines_left=...)  # after reading whether any is due
    n = core.decide(view, now, lines_left=..., reserved_leased=..., room=room)
    routes = core.route([(attempt id, tier), ...], view, room)
    placed = core.place(calls, now, dialplan)        # attempts and Originate variables
    core.observe(record) / core.settle(now)          # facts in, finished attempts out

No I/O and no clock: `now` is always an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from dialer.core import records as r
from dialer.core.abandon import DEFAULT_WINDOW, AbandonWindow
from dialer.core.amd import FalsePositiveCounter
from dialer.core.attempt import Attempt, State, record_key
from dialer.core.estimators import CampaignStats
from dialer.core.originate import CampaignDialplan, originate_variables
from dialer.core.outcomes import LEARNABLE, Outcome
from dialer.core.pacing import BusyAgent, PacingPolicy, PacingSnapshot, calls_to_place
from dialer.core.routing import QueueAgents, Routing, TierRoute, route
from dialer.core.tier_pacing import Claims, ReservedRoom, general_free_for_pacing, reserved_room

_LIVE = (State.dialing, State.ringing, State.up)
_RINGING = (State.dialing, State.ringing)


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent logged in to a queue, as the board sees them now."""

    id: str
    free: bool
    busy_since: float | None = None
    """On a call since (None: not on one)."""
    wrapup_since: float | None = None
    """In after-call work since (None: not in wrap-up)."""
    queues: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CampaignView:
    """What the shell reads before a decision: the agents of each queue the campaign uses."""

    queues: Mapping[str, Sequence[AgentView]]

    def in_queue(self, queue: str) -> Sequence[AgentView]:
        return self.queues.get(queue, ())


@dataclass(frozen=True)
class TierRules:
    """The campaign's tier settings, resolved against the ladder."""

    lowest: str = "standard"
    """The tier of a lead that has none."""
    reserved: frozenset[str] = frozenset()
    """Tiers dialed only against an agent free for them, never predictively."""
    routes: Mapping[str, TierRoute] = field(default_factory=dict)
    wait_for_dedicated: frozenset[str] = frozenset()
    """Reserved tiers that wait for their dedicated team rather than borrow general agents."""

    def dedicated_queues(self) -> set[str]:
        return {rule.queue for tier, rule in self.routes.items() if rule.queue and tier in self.reserved}

    def queues(self, general: str) -> set[str]:
        """Every queue whose agents a view must hold."""
        return {general} | {rule.queue for rule in self.routes.values() if rule.queue}


@dataclass(frozen=True)
class CoreSettings:
    policy: PacingPolicy
    general_queue: str
    agent_wait: int
    ring_timeout: float
    tiers: TierRules = TierRules()
    paced_by_lines: bool = False
    """An IVR campaign: the IVR answers, not an agent, so only its lines pace it."""
    abandon_window: float = DEFAULT_WINDOW
    false_positive_rate: float = 0.0
    false_positives_counted: bool = False
    min_samples: int = 30
    stats_window: int = 2000
    stats_refresh: int = 200


@dataclass(frozen=True, slots=True)
class CallPlan:
    """How a leased call is routed, decided before its Originate."""

    tier: str
    routing: Routing
    reserved: bool


@dataclass(frozen=True, slots=True)
class CallToPlace:
    attempt_id: str
    lead_id: int
    phone: str
    customer: str = ""
    """The customer's id for the dialplan, already made safe for a channel variable."""
    callback_agent: str | None = None
    """A callback promised to an agent free now rings that agent first."""


@dataclass(frozen=True, slots=True)
class PlacedCall:
    attempt: Attempt
    routing: Routing | None
    variables: dict[str, str]


@dataclass(frozen=True, slots=True)
class Finished:
    attempt: Attempt
    outcome: str
    plan: CallPlan | None


@dataclass
class LiveCounts:
    ringing: int = 0
    waiting: int = 0
    talking: int = 0

    @property
    def lines(self) -> int:
        return self.ringing + self.waiting + self.talking


class CampaignCore:
    def __init__(self, settings: CoreSettings, *, wrapup_measured: bool = False) -> None:
        self.settings = settings
        """Replaced by the shell when the campaign's file or the tier ladder changes."""
        self.attempts: dict[str, Attempt] = {}
        self.stats = CampaignStats(window=settings.stats_window, refresh_every=settings.stats_refresh)
        self.abandon_window = AbandonWindow(window=settings.abandon_window)
        self.false_positives = FalsePositiveCounter(
            settings.false_positive_rate, counted=settings.false_positives_counted
        )
        self.wrapup_measured = wrapup_measured
        """True when each wrap-up is measured (`wrapup_ended`); else every talk is taken to
        have the queue's wrap-up time, 0 in the shipped queues.conf."""
        self.plans: dict[str, CallPlan] = {}
        self._claims: dict[str, str] = {}  # attempt id -> "dedicated" | "general"
        self._held = 0  # general agents kept from the pacing for reserved leads waiting
        self._answers_learned: set[str] = set()  # live attempts whose answer is already taught
        # Live attempts already counted in the abandon window: id -> (bucket, abandoned).
        self._fates_counted: dict[str, tuple[int, bool]] = {}
        self._unwritten: dict[str, Finished] = {}  # finished, final row not yet stored
        self.leads_left: int | None = None
        """Leads still to dial, now or later, as last counted (`count_leads`) less the calls
        placed since; None: never counted."""

    def count_leads(self, leads_left: int) -> None:
        """The shell counted the campaign's leads still to dial (at start, after an import,
        once a minute; never per tick). Each call placed until the next count takes one
        off, so a count a minute old never overstates what is left (a lead dialed again
        later is taken off too: the count errs low). A young window's abandon budget looks
        ahead to the answers these leads will certainly bring."""
        if leads_left < 0:
            raise ValueError(f"leads_left must be >= 0, got {leads_left}")
        self.leads_left = leads_left

    # -- what the pacing sees -------------------------------------------------------

    def live_counts(self) -> LiveCounts:
        counts = LiveCounts()
        for attempt in self.attempts.values():
            if attempt.state in _RINGING:
                counts.ringing += 1
            elif attempt.state is State.up:
                counts.waiting += 1
            elif attempt.state is State.bridged:
                counts.talking += 1
        return counts

    def claims(self) -> Claims:
        """Claims on agents held by reserved-tier calls not yet bridged (others are dropped)."""
        attempts = self.attempts
        for attempt_id in [a for a in self._claims if a not in attempts or attempts[a].state not in _LIVE]:
            del self._claims[attempt_id]
        pools = list(self._claims.values())
        return Claims(dedicated=pools.count("dedicated"), general=pools.count("general"))

    def snapshot(self, view: CampaignView, now: float, *, expected_general: int = 0) -> PacingSnapshot:
        """What the predictive pacing sees: reserved calls and the agents they claim left out.

        `expected_general` are general agents the reserved leases just taken will claim.
        """
        members = view.in_queue(self.settings.general_queue)
        # One pass over the attempts: the simulator asks this every tick of every run.
        ringing: list[float] = []
        talking: list[float] = []
        waiting = bridged = 0
        for a in self.attempts.values():
            state = a.state
            if state is State.dialing or state is State.ringing:
                ringing.append(max(0.0, now - a.dialed_at))
            elif state is State.up:
                waiting += 1
            elif state is State.bridged:
                bridged += 1
                if a.bridged_at is not None:
                    talking.append(max(0.0, now - a.bridged_at))
        snapshot = PacingSnapshot(
            agents_logged_in=len(members),
            agents_free=sum(1 for a in members if a.free),
            busy_agents=tuple(
                BusyAgent(elapsed=max(0.0, now - a.busy_since)) for a in members if a.busy_since is not None
            )
            + tuple(
                BusyAgent(elapsed=0.0, in_wrapup=True, wrapup_elapsed=max(0.0, now - a.wrapup_since))
                for a in members
                if a.wrapup_since is not None and a.busy_since is None
            ),
            ringing=tuple(ringing),
            waiting_for_agent=waiting,
            lines_in_use=len(ringing) + waiting + bridged,
            # Talks and rings still going on are censored observations: without them
            # the first talks to end (the short ones) would pass for all of them.
            estimates=self.stats.estimates(self.settings.min_samples, talking=talking, ringing=ringing),
            abandon=self.abandon_window.state(
                now,
                self.settings.policy.abandon_limit,
                coming=None if self.leads_left is None else self.stats.certain_answers(self.leads_left),
            ),
        )
        claims = self.claims()
        claims = Claims(claims.dedicated, claims.general + expected_general + self._held)
        if not self._claims and not expected_general and not self._held:
            return snapshot
        claimed = [self.attempts[a] for a in self._claims]
        return replace(
            snapshot,
            agents_free=general_free_for_pacing(snapshot.agents_free, claims),
            ringing=tuple(
                max(0.0, now - a.dialed_at)
                for a in self.attempts.values()
                if a.state in _RINGING and a.id not in self._claims
            ),
            waiting_for_agent=max(0, snapshot.waiting_for_agent - sum(1 for a in claimed if a.state is State.up)),
        )

    # -- one tick's decisions ------------------------------------------------------

    def reserved_room(self, view: CampaignView, lines_left: int) -> ReservedRoom:
        """Agents free for new reserved-tier calls now.

        A dedicated agent lent to the general queue is never counted on: a general
        customer could take them between the Originate and the answer.
        """
        tiers = self.settings.tiers
        general_queue = self.settings.general_queue
        dedicated_queues = tiers.dedicated_queues()
        lent_to = {
            rule.fallback_queue or general_queue
            for tier, rule in tiers.routes.items()
            if tier in tiers.reserved and rule.queue
        }
        team = {a.id for q in dedicated_queues for a in view.in_queue(q)}
        dedicated = {
            a.id
            for q in dedicated_queues
            for a in view.in_queue(q)
            if a.free and general_queue not in a.queues and not (lent_to & a.queues)
        }
        general = {a.id for a in view.in_queue(general_queue) if a.free} - team
        waits = any(
            rule.queue and view.in_queue(rule.queue)
            for tier, rule in tiers.routes.items()
            if tier in tiers.reserved and tier in tiers.wait_for_dedicated
        )
        claims = self.claims()
        self._held = 0
        return reserved_room(
            dedicated_free=len(dedicated),
            general_free=len(general),
            claims=claims,
            lines_left=lines_left,
            paced_in_flight=sum(1 for a in self.attempts.values() if a.state in _LIVE and a.id not in self._claims),
            borrow_general=not waits,
        )

    @staticmethod
    def asks_due(room: ReservedRoom) -> bool:
        """Whether the shell need read if a reserved lead is due (a read most ticks can skip)."""
        return room.total > 0 or room.borrows_general

    def hold(self, room: ReservedRoom, *, due: bool, lines_left: int) -> ReservedRoom:
        """The room once it is known whether a reserved lead is due.

        When no agent is free for one while one is due, one general agent is kept
        out of the other tiers' pacing: otherwise a predictive campaign, always
        counting on every free agent, would starve its key accounts.
        """
        if not self.asks_due(room):
            return room
        if not due:
            # The room stays for a lease whose CRM tier turns out to be reserved.
            return replace(room, due=False)
        if room.total == 0 and lines_left > 0:
            self._held = 1
        return room

    def decide(
        self,
        view: CampaignView,
        now: float,
        *,
        lines_left: int,
        reserved_leased: int = 0,
        room: ReservedRoom | None = None,
    ) -> int:
        """How many calls of the other tiers to place now, after `reserved_leased` reserved ones."""
        left = lines_left - reserved_leased
        if self.settings.paced_by_lines:
            return left
        # The reserved leases just taken claim general agents once the dedicated ones are used.
        expected = max(0, reserved_leased - room.dedicated_free) if room is not None else 0
        return min(calls_to_place(self.snapshot(view, now, expected_general=expected), self.settings.policy), left)

    def route(
        self, leases: Iterable[tuple[str, str]], view: CampaignView, room: ReservedRoom
    ) -> dict[str, Routing | None]:
        """The routing of each leased call (attempt id, tier), in lease order.

        A reserved-tier call takes a claim on a dedicated agent, else on a general
        one; with neither left this tick it gets None: its lead is given back, due
        at once, for the reserved pass of a later tick.
        """
        settings = self.settings
        tiers = settings.tiers
        dedicated_left, general_left = room.dedicated_free, room.general_free
        out: dict[str, Routing | None] = {}
        for attempt_id, tier in leases:
            reserved = tier in tiers.reserved
            agents = self._queue_agents(view, dedicated_left if reserved else None)
            routing = route(
                tier, tiers.routes, general_queue=settings.general_queue, agent_wait=settings.agent_wait, agents=agents
            )
            if reserved:
                if routing.dedicated and dedicated_left > 0:
                    dedicated_left -= 1
                    self._claims[attempt_id] = "dedicated"
                elif general_left > 0:
                    general_left -= 1
                    self._claims[attempt_id] = "general"
                    if routing.dedicated:
                        # No dedicated agent left for it this tick: straight to the general queue.
                        routing = route(
                            tier,
                            tiers.routes,
                            general_queue=settings.general_queue,
                            agent_wait=settings.agent_wait,
                            agents={},
                        )
                else:
                    out[attempt_id] = None
                    continue
            self.plans[attempt_id] = CallPlan(tier, routing, reserved)
            out[attempt_id] = routing
        return out

    def _queue_agents(self, view: CampaignView, dedicated_left: int | None) -> dict[str, QueueAgents]:
        agents = {}
        for rule in self.settings.tiers.routes.values():
            if rule.queue:
                members = view.in_queue(rule.queue)
                free = sum(1 for a in members if a.free)
                if dedicated_left is not None:
                    free = min(free, dedicated_left)
                agents[rule.queue] = QueueAgents(len(members), free)
        return agents

    def place(self, calls: Iterable[CallToPlace], now: float, dialplan: CampaignDialplan) -> list[PlacedCall]:
        """Start the attempts of routed calls; each with its Originate's variables."""
        placed = []
        for call in calls:
            plan = self.plans.get(call.attempt_id)
            routing = plan.routing if plan is not None else None
            attempt = Attempt(
                id=call.attempt_id,
                lead_id=call.lead_id,
                phone=call.phone,
                queue=routing.queue if routing is not None else self.settings.general_queue,
                dialed_at=now,
                ring_timeout=self.settings.ring_timeout,
            )
            self.attempts[attempt.id] = attempt
            variables = originate_variables(
                attempt.id, dialplan, routing=routing, customer=call.customer, callback_agent=call.callback_agent
            )
            placed.append(PlacedCall(attempt, routing, variables))
        if self.leads_left is not None:
            self.leads_left = max(0, self.leads_left - len(placed))
        return placed

    # -- facts ---------------------------------------------------------------------

    def observe(self, record: r.CallRecord) -> tuple[Attempt, dict[str, object]] | None:
        """Feed one call record; the attempt it is about and its changed columns, or None."""
        attempt = self.attempts.get(record_key(record))
        if attempt is None or attempt.id in self._unwritten:
            return None
        changes = attempt.apply(record)
        if (
            isinstance(record, (r.QueueJoined, r.AgentConnected))
            and attempt.answered_at is not None
            and attempt.id not in self._answers_learned
        ):
            # A person is in the queue (past AMD, not an IVR's): the answer is taught now,
            # not when the talk ends minutes later; the pacing would otherwise see the
            # no-answers and the busy lines first and take the answer rate for far lower.
            self._answers_learned.add(attempt.id)
            self.stats.observe_attempt(Outcome.answered, max(0.0, attempt.answered_at - attempt.dialed_at))
        self._count_fate(attempt, record)
        return attempt, changes

    def _count_fate(self, attempt: Attempt, record: r.CallRecord) -> None:
        """Count a live answer in the abandon window as soon as its fate is known.

        Counted at the end of the call instead, a campaign's first minutes would see each
        abandon (known within seconds) long before the bridged calls of the same minutes
        (known when their talk ends) and be held back by a rate far above the true one.
        `_decide` settles the count with the final outcome.
        """
        if attempt.id in self._fates_counted or attempt.answered_at is None or attempt.machine:
            return
        if isinstance(record, r.AgentConnected) and attempt.bridged_at is not None:
            abandoned = False
        elif isinstance(record, r.DialerAbandoned) and attempt.abandoned and attempt.bridged_at is None:
            abandoned = True
        else:
            return
        bucket = self.abandon_window.record(record.at, abandoned=abandoned)
        self._fates_counted[attempt.id] = (bucket, abandoned)

    def _uncount_fate(self, counted: tuple[int, bool] | None) -> None:
        if counted is not None:
            bucket, abandoned = counted
            self.abandon_window.withdraw(bucket, abandoned=abandoned)

    def pbx_shutdown(self, record: r.PbxShutdown) -> None:
        for attempt in self.attempts.values():
            attempt.apply(record)

    def settle(self, now: float) -> list[Finished]:
        """Finish and drop every attempt whose outcome is known by now (no final row to write)."""
        done = self.due(now)
        for finished in done:
            self.written(finished.attempt.id)
        return done

    def due(self, now: float) -> list[Finished]:
        """The finished attempts whose final row is yet to be written: those settled by now
        and those whose earlier write failed.

        Each stays among `attempts` (ended, no longer live) until `written`: dropped
        before its row is stored, a failed write would leave its lead leased for ever.
        """
        for attempt in [a for a in self.attempts.values() if a.settled(now)]:
            self._unwritten[attempt.id] = self._decide(attempt, now)
        return list(self._unwritten.values())

    def due_one(self, attempt_id: str, now: float) -> Finished | None:
        """`due` for one attempt (the one an event just ended), without a look at the others."""
        attempt = self.attempts.get(attempt_id)
        if attempt is not None and attempt.settled(now):
            self._unwritten[attempt_id] = self._decide(attempt, now)
        return self._unwritten.get(attempt_id)

    def written(self, attempt_id: str) -> None:
        """The attempt's final row is stored: it goes."""
        self._unwritten.pop(attempt_id, None)
        self.attempts.pop(attempt_id, None)

    def finish(self, attempt: Attempt, now: float) -> Finished:
        """Decide the attempt's outcome, forget it and learn from it."""
        finished = self._decide(attempt, now)
        self.attempts.pop(attempt.id, None)
        return finished

    def _decide(self, attempt: Attempt, now: float) -> Finished:
        outcome = attempt.finish(now)
        plan = self.forget(attempt.id)
        # A call cut short is due again: no revisit to book. Like an interrupted one it
        # teaches the pacing and the abandon window nothing (its talk time is not the
        # customer's); `restore` is given none either (Store.recent_attempts).
        answer_learned = attempt.id in self._answers_learned
        self._answers_learned.discard(attempt.id)
        if answer_learned and attempt.cut_short and attempt.answered_at is not None:
            self.stats.withdraw_answer(max(0.0, attempt.answered_at - attempt.dialed_at))
        fate_counted = self._fates_counted.pop(attempt.id, None)
        if attempt.cut_short:
            # Out of the window as out of the legal rate (`dialer report`).
            self._uncount_fate(fate_counted)
        else:
            self.learn(
                outcome,
                attempt.dialed_at,
                attempt.answered_at,
                attempt.bridged_at,
                attempt.ended_at or now,
                answer_learned=answer_learned,
                fate_counted=fate_counted,
            )
        return Finished(attempt, outcome, plan)

    def forget(self, attempt_id: str) -> CallPlan | None:
        """A call that ended or was never sent: its plan and claim go."""
        self._claims.pop(attempt_id, None)
        return self.plans.pop(attempt_id, None)

    def leave_all(self) -> None:
        """At the stop: the calls still up are left to Asterisk (and to the next start)."""
        self.attempts.clear()
        self.plans.clear()
        self._claims.clear()
        self._answers_learned.clear()
        for counted in self._fates_counted.values():
            # Their outcomes are stored by whoever finishes them, and a restart rebuilds
            # the window from those rows: counted here, they would be counted twice.
            self._uncount_fate(counted)
        self._fates_counted.clear()
        self._unwritten.clear()

    # -- learning ------------------------------------------------------------------

    def learn(
        self,
        outcome: str,
        dialed: float,
        answered: float | None,
        bridged: float | None,
        ended: float,
        *,
        answer_learned: bool = False,
        fate_counted: tuple[int, bool] | None = None,
    ) -> None:
        """Teach the pacing one finished attempt (also how memory is restored at start-up).

        `answer_learned`: its live answer was taught when it joined the queue (`observe`).
        `fate_counted`: it is already in the abandon window (`_count_fate`), kept there if
        the outcome agrees, else taken back.
        """
        if outcome not in LEARNABLE:
            self._uncount_fate(fate_counted)
            return
        if not answer_learned:
            self.stats.observe_attempt(outcome, max(0.0, (answered if answered is not None else ended) - dialed))
        fate: bool | None = None  # abandoned or not, None: no live answer to count
        if outcome == "machine":
            # No live answer; only an estimated share counts, as abandoned (dialer.core.amd).
            if self.false_positives.machine():
                fate = True
        elif answered is not None:
            fate = outcome == "abandoned"
        if fate_counted is None or fate_counted[1] != fate:
            self._uncount_fate(fate_counted)
            if fate is not None:
                self.abandon_window.record(ended, abandoned=fate)
        if bridged is not None:
            self.stats.observe_talk(max(0.0, ended - bridged))
            if not self.wrapup_measured:
                self.stats.observe_wrapup(0.0)

    def wrapup_ended(self, seconds: float) -> None:
        """An agent of the campaign went from wrap-up to free after `seconds`."""
        self.stats.observe_wrapup(max(0.0, seconds))

    def restore(self, rows: Iterable[tuple[str, float, float | None, float | None, float]]) -> None:
        """Rebuild statistics and abandon window from stored attempts (outcome, dialed,
        answered, bridged, ended), oldest first."""
        for outcome, dialed, answered, bridged, ended in rows:
            self.learn(outcome, dialed, answered, bridged, ended)
