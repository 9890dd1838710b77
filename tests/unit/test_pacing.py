import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.core.abandon import AbandonState
from dialer.core.estimators import CampaignEstimates, CampaignStats
from dialer.core.pacing import (
    BusyAgent,
    PacingMode,
    PacingPolicy,
    PacingSnapshot,
    calls_to_place,
    safety_margin,
)


def _lognormal(rng: random.Random, mean: float, cv: float) -> float:
    sigma = math.sqrt(math.log1p(cv**2))
    return rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)


def _standard_estimates(talk_mean: float = 60.0) -> CampaignEstimates:
    """Estimates learnt from the standard model: 30 % live answer, busy at 3 s, no answer at 25 s."""
    rng = random.Random(7)
    stats = CampaignStats()
    for _ in range(2000):
        u = rng.random()
        if u < 0.3:
            stats.observe_attempt("answered", _lognormal(rng, 8, 0.5))
        elif u < 0.4:
            stats.observe_attempt("busy", 3.0)
        else:
            stats.observe_attempt("no_answer", 25.0)
    for _ in range(1000):
        stats.observe_talk(_lognormal(rng, talk_mean, 0.8))
        stats.observe_wrapup(10.0)
    estimates = stats.estimates()
    assert estimates is not None
    return estimates


ESTIMATES = _standard_estimates()
HEALTHY = AbandonState(answered=1000, abandoned=10)
SPENT = AbandonState(answered=1000, abandoned=30)


def snapshot(
    *,
    logged_in: int = 10,
    free: int = 0,
    busy: tuple[BusyAgent, ...] = (),
    ringing: tuple[float, ...] = (),
    waiting: int = 0,
    lines: int | None = None,
    estimates: CampaignEstimates | None = ESTIMATES,
    abandon: AbandonState = HEALTHY,
) -> PacingSnapshot:
    if lines is None:
        lines = len(ringing) + waiting + sum(1 for b in busy if not b.in_wrapup)
    return PacingSnapshot(
        agents_logged_in=logged_in,
        agents_free=free,
        busy_agents=busy,
        ringing=ringing,
        waiting_for_agent=waiting,
        lines_in_use=lines,
        estimates=estimates,
        abandon=abandon,
    )


def policy(mode: PacingMode, **kwargs: object) -> PacingPolicy:
    kwargs.setdefault("max_lines", 1000)
    # These look at one forecast; the per-tick ramp that spreads it has its own tests.
    kwargs.setdefault("ramp_per_tick", 100.0)
    return PacingPolicy(mode=mode, **kwargs)  # type: ignore[arg-type]


# --- random snapshots for the invariants ------------------------------------------------

busy_agents = st.builds(
    BusyAgent,
    elapsed=st.floats(0, 2000, allow_nan=False),
    in_wrapup=st.booleans(),
    wrapup_elapsed=st.none() | st.floats(0, 60, allow_nan=False),
)


@st.composite
def snapshots(draw: st.DrawFn) -> PacingSnapshot:
    logged_in = draw(st.integers(0, 120))
    free = draw(st.integers(0, logged_in))
    busy = tuple(draw(st.lists(busy_agents, max_size=logged_in - free)))
    ringing = tuple(draw(st.lists(st.floats(0, 40, allow_nan=False), max_size=150)))
    waiting = draw(st.integers(0, 20))
    talking = sum(1 for b in busy if not b.in_wrapup)
    lines = len(ringing) + waiting + talking + draw(st.integers(0, 30))
    answered = draw(st.integers(0, 5000))
    abandoned = draw(st.integers(0, min(answered, 300)))
    return PacingSnapshot(
        agents_logged_in=logged_in,
        agents_free=free,
        busy_agents=busy,
        ringing=ringing,
        waiting_for_agent=waiting,
        lines_in_use=lines,
        estimates=draw(st.sampled_from([ESTIMATES, None])),
        abandon=AbandonState(answered=answered, abandoned=abandoned),
    )


policies = st.builds(
    PacingPolicy,
    mode=st.sampled_from(list(PacingMode)),
    max_lines=st.integers(0, 400),
    ratio=st.floats(1.0, 5.0),
    abandon_target=st.floats(0.005, 0.03),
    max_per_tick=st.none() | st.integers(0, 50),
)


@settings(max_examples=300, deadline=None)
@given(snapshots(), policies)
def test_result_is_never_negative_and_never_exceeds_the_lines(snap: PacingSnapshot, pol: PacingPolicy) -> None:
    n = calls_to_place(snap, pol)
    assert n >= 0
    assert n == 0 or snap.lines_in_use + n <= pol.max_lines
    if pol.max_per_tick is not None:
        assert n <= pol.max_per_tick


@settings(max_examples=200, deadline=None)
@given(snapshots(), policies)
def test_nothing_is_placed_without_a_logged_in_agent(snap: PacingSnapshot, pol: PacingPolicy) -> None:
    nobody = PacingSnapshot(**{**snap.__dict__, "agents_logged_in": 0, "agents_free": 0, "busy_agents": ()})
    assert calls_to_place(nobody, pol) == 0


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.integers(0, 400))
def test_progressive_never_has_more_calls_in_flight_than_free_agents(snap: PacingSnapshot, max_lines: int) -> None:
    n = calls_to_place(snap, policy(PacingMode.progressive, max_lines=max_lines))
    in_flight = len(snap.ringing) + snap.waiting_for_agent
    assert n == 0 or in_flight + n <= snap.agents_free


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.integers(1, 400), st.sampled_from([PacingMode.predictive, PacingMode.ratio]))
def test_an_exhausted_abandon_budget_falls_back_to_progressive(
    snap: PacingSnapshot, max_lines: int, mode: PacingMode
) -> None:
    answered = snap.abandon.answered
    # One more abandon would put the rate over 3 %.
    spent = AbandonState(answered=answered, abandoned=min(answered, math.ceil(0.03 * answered)))
    assert spent.exhausted()
    snap = PacingSnapshot(**{**snap.__dict__, "abandon": spent})
    assert calls_to_place(snap, policy(mode, max_lines=max_lines, ratio=3.0)) == calls_to_place(
        snap, policy(PacingMode.progressive, max_lines=max_lines)
    )


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_predictive_never_dials_less_than_progressive(snap: PacingSnapshot) -> None:
    assert calls_to_place(snap, policy(PacingMode.predictive)) >= calls_to_place(snap, policy(PacingMode.progressive))


# --- behaviour -----------------------------------------------------------------------------


def test_progressive_fills_free_agents_minus_calls_in_flight() -> None:
    snap = snapshot(free=5, ringing=(1.0, 2.0), waiting=1)
    assert calls_to_place(snap, policy(PacingMode.progressive)) == 2


def test_ratio_places_ratio_calls_per_free_agent() -> None:
    snap = snapshot(free=3, ringing=(1.0,))
    assert calls_to_place(snap, policy(PacingMode.ratio, ratio=2.0)) == 5
    assert calls_to_place(snap, policy(PacingMode.ratio, ratio=1.5)) == 3  # floor(4.5) - 1


def test_predictive_at_a_cold_start_dials_progressively() -> None:
    snap = snapshot(free=4, estimates=None)
    assert calls_to_place(snap, policy(PacingMode.predictive)) == 4


def test_cold_start_abandon_counts_mean_progressive() -> None:
    snap = snapshot(free=4, abandon=AbandonState(answered=0, abandoned=0))
    assert calls_to_place(snap, policy(PacingMode.predictive)) == 4


def test_predictive_overdials_for_free_agents_at_30_percent_answer() -> None:
    n = calls_to_place(snapshot(free=10), policy(PacingMode.predictive))
    # about 10 / 0.3 calls, less a safety margin
    assert 15 <= n <= 33


def test_predictive_waits_when_every_agent_just_started_a_call() -> None:
    busy = tuple(BusyAgent(elapsed=1.0) for _ in range(10))
    assert calls_to_place(snapshot(busy=busy), policy(PacingMode.predictive)) == 0


def test_predictive_dials_ahead_for_agents_about_to_finish_wrap_up() -> None:
    finishing = tuple(BusyAgent(elapsed=70.0, in_wrapup=True, wrapup_elapsed=9.0) for _ in range(10))
    assert calls_to_place(snapshot(busy=finishing), policy(PacingMode.progressive)) == 0
    assert calls_to_place(snapshot(busy=finishing), policy(PacingMode.predictive)) >= 10


def test_predictive_counts_calls_already_ringing() -> None:
    fresh = calls_to_place(snapshot(free=10), policy(PacingMode.predictive))
    with_ringing = calls_to_place(snapshot(free=10, ringing=(4.0,) * 10), policy(PacingMode.predictive))
    assert with_ringing < fresh
    # calls that rang 24 s are nearly all going to ring out: they hardly count
    nearly_dead = calls_to_place(snapshot(free=10, ringing=(24.0,) * 10), policy(PacingMode.predictive))
    assert nearly_dead > with_ringing


def test_predictive_backs_off_as_abandons_exceed_the_target() -> None:
    counts = [
        calls_to_place(snapshot(free=20, abandon=AbandonState(answered=2000, abandoned=a)), policy(PacingMode.predictive))
        for a in (0, 30, 50, 59)
    ]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1]


def test_safety_margin_follows_the_abandon_count() -> None:
    pol = policy(PacingMode.predictive, abandon_target=0.02)
    on_target = safety_margin(AbandonState(answered=1000, abandoned=20), pol)
    # nominal, plus the little the budget left (0.03 * 1001 - 20 = 10) adds
    assert on_target == pytest.approx(pol.safety + pol.budget_gain / 10.03)
    assert safety_margin(AbandonState(answered=1000, abandoned=35), pol) > on_target
    assert safety_margin(AbandonState(answered=1000, abandoned=5), pol) < on_target
    assert safety_margin(AbandonState(answered=1000, abandoned=0), pol) >= pol.min_safety


def test_lines_and_tick_limits_cap_every_mode() -> None:
    snap = snapshot(free=10, lines=95)
    for mode in PacingMode:
        assert calls_to_place(snap, policy(mode, max_lines=100)) <= 5
        assert calls_to_place(snap, policy(mode, max_lines=1000, max_per_tick=2)) <= 2
    assert calls_to_place(snapshot(free=10, lines=120), policy(PacingMode.progressive, max_lines=100)) == 0


def test_policy_refuses_a_limit_above_three_percent_without_override() -> None:
    with pytest.raises(ValueError, match="override_ceiling"):
        PacingPolicy(mode=PacingMode.predictive, max_lines=10, abandon_limit=0.05)
    PacingPolicy(mode=PacingMode.predictive, max_lines=10, abandon_limit=0.05, override_ceiling=True)
    with pytest.raises(ValueError, match="abandon_target"):
        PacingPolicy(mode=PacingMode.predictive, max_lines=10, abandon_limit=0.02, abandon_target=0.025)
    assert PacingPolicy(mode="ratio", max_lines=1).mode is PacingMode.ratio  # type: ignore[arg-type]
