"""How many calls to place now: a pure function of a snapshot and a policy.

Modes:
- progressive: one call in flight (ringing or answered and waiting) per free agent; an
  answered customer always finds an agent, so it never abandons.
- ratio: `ratio` calls in flight per free agent, whatever the statistics say.
- predictive: forecasts, over the next `horizon` seconds, how many customers will answer
  (calls ringing now, plus the new calls) and how many agents will be free (free now, plus
  busy agents finishing talk and wrap-up), and places the most calls for which the
  forecast answers never outrun the forecast free agents (with `grace` seconds of slack)
  by more than a safety margin. The margin is `z` standard deviations of the forecast;
  `z` follows the measured abandon rate: above the target it grows, below it shrinks.

Every mode respects the same hard rules: nothing without a logged-in agent, never above
`max_lines`, and when the abandon budget is spent (one more abandon would break the
limit) ratio and predictive fall back to progressive. A cold start (no estimates yet)
also dials progressively.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from dialer.core.abandon import AbandonState
from dialer.core.estimators import ELAPSED_BUCKET, CampaignEstimates, Forecast
from dialer.core.outcomes import ABANDON_CEILING, DialingMode

# The pacing's own name for the dialing mode, kept because the runner, the simulator,
# the benchmarks and their tests import it from here.
PacingMode = DialingMode


@dataclass(frozen=True, slots=True)
class BusyAgent:
    elapsed: float
    """Seconds since this agent's current call was bridged (talk and wrap-up so far)."""
    in_wrapup: bool = False
    wrapup_elapsed: float | None = None
    """Seconds since wrap-up began, when known; sharpens the forecast of when it ends."""


@dataclass(frozen=True)
class PacingPolicy:
    mode: PacingMode
    max_lines: int
    """Customer calls in progress (ringing, waiting, talking) at most."""
    ratio: float = 1.0
    """Ratio mode: calls in flight per free agent."""
    abandon_limit: float = ABANDON_CEILING
    """Hard ceiling: above it every mode dials progressively."""
    abandon_target: float = 0.025
    """What predictive aims at, under the limit."""
    grace: float = 2.0
    """Seconds an answered customer waits for an agent before it counts as abandoned."""
    horizon: float = 25.0
    """Seconds ahead the predictive forecast looks: the ring timeout is enough, since a call
    placed now is answered (or given up) by then."""
    step: float = 1.0
    """Seconds between the forecast's time points."""
    safety: float = 2.0
    """Predictive: margin in standard deviations of the forecast when on target."""
    feedback_gain: float = 1.0
    """Predictive: margin added per standard deviation of abandons above the target."""
    min_safety: float = 0.0
    max_safety: float = 6.0
    max_per_tick: int | None = None
    """Calls placed in one decision at most (a carrier's calls-per-second limit)."""
    ramp_per_tick: float = 0.1
    """Predictive: calls beyond progressive placed in one decision, per logged-in agent, at
    most. A start (or a team logging in) spreads over a few ticks, each seeing the calls the
    previous placed, instead of betting on one forecast: 100 agents, 10 extra calls a tick."""
    cold_evidence: float = 3.0
    """Predictive: abandons expected at the target before running under target is believed
    at all (in full only well past it), for a team of `BUDGET_TEAM` agents or more; a
    smaller team needs proportionally less evidence, and at least one abandon. With less,
    "no abandons yet" says little, and the margin stays at nominal. A miss of a 20-agent
    forecast costs a burst of several abandons, so it must not run harder on thin evidence
    (with one abandon's evidence a 20-agent campaign let 5 go within 7 s at its 155th
    answer); a 5-agent team answers about 80 customers an hour on 180 s talks, and with
    three abandons' evidence it was held at nominal all day, running at 0.3-1 %."""
    budget_gain: float = 3.0
    """Predictive: margin added per unit of abandon budget left below one (gain / budget), so
    the approach to the limit is gradual and the hard gate (progressive) is seldom reached."""
    override_ceiling: bool = False
    """Allow an abandon limit above 3 %; only where the law allows it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", PacingMode(self.mode))
        if self.max_lines < 0:
            raise ValueError("max_lines must be >= 0")
        if self.ratio < 1.0:
            raise ValueError("ratio must be >= 1")
        if not 0.0 < self.abandon_limit <= 1.0:
            raise ValueError("abandon_limit must be in (0, 1]")
        if self.abandon_limit > ABANDON_CEILING and not self.override_ceiling:
            raise ValueError(
                f"abandon_limit {self.abandon_limit} is above {ABANDON_CEILING}: set override_ceiling to allow it"
            )
        if not 0.0 < self.abandon_target <= self.abandon_limit:
            raise ValueError("abandon_target must be in (0, abandon_limit]")
        if self.grace < 0 or self.horizon <= 0 or self.step <= 0:
            raise ValueError("grace must be >= 0, horizon and step > 0")
        if self.min_safety > self.max_safety:
            raise ValueError("min_safety must not exceed max_safety")
        if self.max_per_tick is not None and self.max_per_tick < 0:
            raise ValueError("max_per_tick must be >= 0")
        if not self.ramp_per_tick > 0 or self.cold_evidence < 0 or self.budget_gain < 0:
            raise ValueError("ramp_per_tick must be > 0, cold_evidence and budget_gain >= 0")


@dataclass(frozen=True)
class PacingSnapshot:
    agents_logged_in: int
    agents_free: int
    """Logged in, not paused, not on a call, not in wrap-up."""
    busy_agents: tuple[BusyAgent, ...]
    ringing: tuple[float, ...]
    """Elapsed seconds of each call placed and not yet answered or failed."""
    waiting_for_agent: int
    """Answered customers not yet bridged to an agent."""
    lines_in_use: int
    """Every customer call in progress."""
    estimates: CampaignEstimates | None
    """None at a cold start: the pacing then dials progressively."""
    abandon: AbandonState


def calls_to_place(snapshot: PacingSnapshot, policy: PacingPolicy) -> int:
    """How many calls to launch now (never negative)."""
    if snapshot.agents_logged_in <= 0:
        return 0
    room = policy.max_lines - snapshot.lines_in_use
    if policy.max_per_tick is not None:
        room = min(room, policy.max_per_tick)
    if room <= 0:
        return 0
    in_flight = len(snapshot.ringing) + snapshot.waiting_for_agent
    progressive = max(0, snapshot.agents_free - in_flight)
    limit = min(policy.abandon_limit, snapshot.abandon.limit)
    if policy.mode is PacingMode.progressive or snapshot.abandon.exhausted(limit, policy.abandon_target):
        wanted = progressive
    elif policy.mode is PacingMode.ratio:
        wanted = max(0, math.floor(policy.ratio * snapshot.agents_free + 1e-9) - in_flight)
    elif snapshot.estimates is None:
        wanted = progressive
    else:
        # Progressive is always safe (each call has its free agent), so never dial less.
        ramp = max(1, math.ceil(policy.ramp_per_tick * snapshot.agents_logged_in))
        wanted = max(progressive, min(progressive + ramp, _predictive(snapshot, policy, snapshot.estimates, room)))
    return max(0, min(wanted, room))


BUDGET_TEAM = 20
"""Agents from which the budget term of the margin has its full weight in a young window."""
YOUNG_WINDOW = 100
"""Live answers under which a window is young: its rate is not judged yet, and its budget
is small because little was answered."""


def safety_margin(abandon: AbandonState, policy: PacingPolicy, agents: int | None = None) -> float:
    """The predictive margin `z`, in standard deviations of the forecast.

    The feedback term is the count of abandons above the target so far, in standard
    deviations of that count: the window's own history integrates the error, so a
    campaign that ran hot dials more cautiously until it is back under target, and one
    that ran cold dials harder. Running cold is believed only as far as the evidence goes:
    no abandon in the first 150 answers at a 2 % target (50 for a team of 5, whose misses
    cost fewer abandons at once) is what a campaign on target shows too, so the margin does
    not start below nominal. And the closer the window is to the
    limit (the budget left), the wider the margin, so the campaign slows down smoothly
    instead of tripping the hard gate and dialing progressively.
    """
    target = policy.abandon_target
    expected = target * abandon.answered
    excess = (abandon.abandoned - expected) / math.sqrt(expected + 1.0)
    evidence = policy.cold_evidence
    if agents is not None:
        evidence = min(evidence, max(1.0, evidence * agents / BUDGET_TEAM))
    if excess < 0.0 and evidence > 0.0:
        excess *= max(0.0, 1.0 - evidence / max(expected, 1e-9))
    z = policy.safety + policy.feedback_gain * excess
    limit = min(policy.abandon_limit, abandon.limit)
    budget = abandon.budget(limit, policy.abandon_target)
    if budget <= 0.0:
        z = policy.max_safety
    else:
        # The budget counts abandons; one bad forecast costs about as many as there are
        # agents' worth of calls in play, so a small team in a young window (its budget
        # small because little was answered yet, not because the limit is near) needs
        # less of a cushion, and a big team more: its misses come as bursts of several
        # abandons (100 agents: 7 within 2 s), which a budget of a few does not absorb.
        # With the leads left known, young only while the budget is the one measured at the
        # 100th answer, which keeps an abandon of slack for a burst. From about the 66th
        # answer the plain budget (one more abandon and the rate is at the limit) is the
        # larger and governs, with no slack: 2 abandons at 99 answers, a small cushion, 9
        # calls ringing for 2 free agents, and two answered together made 4 in 103 (3.9 %)
        # once judged. Told nothing of its leads, a window keeps the plain budget all along
        # (the old gate) and its small cushion, as before.
        young = abandon.answered < YOUNG_WINDOW and (abandon.reachable is None or budget > abandon.budget(limit))
        if agents is None:
            scale = 1.0
        elif young:
            scale = min(1.0, agents / BUDGET_TEAM)
        else:
            scale = max(1.0, math.sqrt(agents / BUDGET_TEAM))
        # The gain answers a judged window's bursts (the 100-agent miss came near the 380th
        # answer); a young window keeps one per unit of budget, or a small team's first
        # hour is held back to progressive for the few abandons its budget already absorbs.
        gain = 1.0 if young and agents is not None else policy.budget_gain
        z += gain * scale / budget
    return min(policy.max_safety, max(policy.min_safety, z))


@lru_cache(maxsize=64)
def _offsets(step: float, horizon: float, shift: float) -> tuple[float, ...]:
    count = int(math.floor(horizon / step + 1e-9))
    return tuple(i * step + shift for i in range(count + 1))


def _predictive(snapshot: PacingSnapshot, policy: PacingPolicy, estimates: CampaignEstimates, room: int) -> int:
    demand_at = _offsets(policy.step, policy.horizon, 0.0)
    # An agent who frees up within the grace time after a customer answered still takes
    # that customer in time: supply at t is agents free by t + grace.
    supply_at = _offsets(policy.step, policy.horizon, policy.grace)
    points = len(demand_at)

    demand_rows: list[Forecast] = []
    for elapsed, count in _bucketed(snapshot.ringing).items():
        demand_rows.extend([estimates.ring.ringing(elapsed, demand_at)] * count)
    busy = estimates.busy
    supply_rows: list[Forecast] = []
    for agent in snapshot.busy_agents:
        if agent.in_wrapup:
            supply_rows.append(busy.wrapping_up(agent.wrapup_elapsed, supply_at))
        else:
            supply_rows.append(busy.talking(agent.elapsed, supply_at))

    # Column sums: expected answers (demand) and free agents (supply) by each time point,
    # and the variance of their difference (independent Bernoulli events).
    demand = _column_sums([row.p for row in demand_rows], points)
    supply = _column_sums([row.p for row in supply_rows], points)
    variance = _column_sums([row.variance for row in demand_rows + supply_rows], points)
    waiting, free = snapshot.waiting_for_agent, snapshot.agents_free
    slack = [free + supply[i] - waiting - demand[i] for i in range(points)]

    new_call, new_variance = estimates.ring.new_call(demand_at)
    z = safety_margin(snapshot.abandon, policy, snapshot.agents_logged_in)
    # The answer rate is itself an estimate from a few hundred live answers, and its error
    # moves every ringing call's forecast the same way (no averaging out): its variance
    # grows with the square of the calls in play. Leaving it out let a rate estimated 2
    # standard errors low put a 100-agent campaign over the limit with a burst of abandons.
    shared = estimates.ring.relative_variance

    def fits(k: int) -> bool:
        for i in range(points):
            expected = demand[i] + k * new_call[i]
            spread = variance[i] + k * new_variance[i] + shared * expected * expected
            if k * new_call[i] + z * math.sqrt(spread) > slack[i] + 1e-9:
                return False
        return True

    if not fits(0):
        return 0
    low, high = 0, room  # fits(low) holds; find the largest k that fits
    if fits(high):
        return high
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def _bucketed(elapsed_times: Iterable[float]) -> dict[float, int]:
    counts: dict[float, int] = {}
    for elapsed in elapsed_times:
        key = math.floor(elapsed / ELAPSED_BUCKET) * ELAPSED_BUCKET
        counts[key] = counts.get(key, 0) + 1
    return counts


def _column_sums(rows: list[tuple[float, ...]], points: int) -> list[float]:
    if not rows:
        return [0.0] * points
    return [sum(column) for column in zip(*rows)]
