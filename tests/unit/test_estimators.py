import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.core.abandon import AbandonState, AbandonWindow
from dialer.core.estimators import CampaignStats, Distribution

OFFSETS = tuple(float(t) for t in range(0, 26))


def fed(answered: int = 30, busy: int = 10, no_answer: int = 60, talks: int = 50, **kwargs: int) -> CampaignStats:
    stats = CampaignStats(**kwargs)
    for i in range(answered):
        stats.observe_attempt("answered", 4.0 + (i % 9))  # 4..12 s
    for _ in range(busy):
        stats.observe_attempt("busy", 3.0)
    for _ in range(no_answer):
        stats.observe_attempt("no_answer", 25.0)
    for i in range(talks):
        stats.observe_talk(30.0 + 2 * (i % 31))  # 30..90 s
        stats.observe_wrapup(10.0)
    return stats


def test_distribution_cdf_and_quantile() -> None:
    d = Distribution.of([3.0, 1.0, 2.0, 2.0])
    assert d.samples == (1.0, 2.0, 2.0, 3.0)
    assert d.cdf(0.5) == 0.0
    assert d.cdf(2.0) == 0.75
    assert d.cdf(3.0) == 1.0
    assert d.quantile(0.5) == 2.0
    assert d.quantile(1.0) == 3.0
    assert d.mean == 2.0
    assert Distribution.of([]).cdf(1.0) == 0.0


def test_no_estimates_until_enough_calls_are_seen() -> None:
    stats = CampaignStats()
    assert stats.estimates() is None
    for _ in range(29):
        stats.observe_attempt("answered", 5.0)
    for _ in range(10):
        stats.observe_talk(60.0)
    assert stats.estimates(min_samples=30) is None
    stats.observe_attempt("no_answer", 25.0)
    assert stats.estimates(min_samples=30) is not None


def test_no_estimates_without_finished_calls() -> None:
    stats = fed(talks=0)
    assert stats.estimates() is None


def test_answer_probability_counts_abandoned_as_live() -> None:
    stats = fed(answered=20, busy=10, no_answer=60)
    for _ in range(10):
        stats.observe_attempt("abandoned", 6.0)
    estimates = stats.estimates()
    assert estimates is not None
    assert estimates.answer_probability == pytest.approx(30 / 100)


def test_a_ringing_call_is_more_likely_answered_once_busy_signals_are_past() -> None:
    estimates = fed().estimates()
    assert estimates is not None
    at_start = estimates.ring.ringing(0.0, OFFSETS).p
    after_busy = estimates.ring.ringing(3.5, OFFSETS).p
    assert at_start[-1] == pytest.approx(0.3)
    assert after_busy[-1] == pytest.approx(30 / 90)  # the busy calls are gone
    # past every answer time seen, the call will ring out
    assert estimates.ring.ringing(13.0, OFFSETS).p[-1] == 0.0
    assert estimates.ring.new_call(OFFSETS).p == at_start


def test_busy_agent_curves() -> None:
    estimates = fed().estimates()
    assert estimates is not None
    busy = estimates.busy
    fresh = busy.talking(0.0, OFFSETS).p
    assert fresh[-1] == 0.0  # a call lasts at least 30 s + 10 s wrap-up
    late = busy.talking(85.0, OFFSETS).p
    assert all(0.0 <= p <= 1.0 for p in late)
    assert list(late) == sorted(late)
    assert late[-1] == pytest.approx(1.0)  # talks end by 90 s, wrap-up by 100 s
    beyond = busy.talking(500.0, OFFSETS).p
    assert beyond == tuple(0.0 for _ in OFFSETS)  # longer than any call seen: not counted on
    wrap = busy.wrapping_up(4.0, OFFSETS).p
    assert wrap[5] == 0.0 and wrap[6] == 1.0  # a fixed 10 s wrap-up
    assert busy.wrapping_up(None, OFFSETS).p[10] == 1.0
    assert busy.wrapping_up(12.0, OFFSETS).p[0] == 1.0  # overdue


def test_forecast_variance_is_bernoulli() -> None:
    estimates = fed().estimates()
    assert estimates is not None
    forecast = estimates.ring.ringing(2.0, OFFSETS)
    assert forecast.variance == tuple(p * (1 - p) for p in forecast.p)


def test_estimates_are_kept_until_a_refresh_is_due() -> None:
    stats = fed(answered=300, busy=100, no_answer=600, talks=400, refresh_every=50)
    first = stats.estimates()
    stats.observe_attempt("answered", 5.0)
    assert stats.estimates() is first
    for _ in range(50):
        stats.observe_attempt("no_answer", 25.0)
    second = stats.estimates()
    assert second is not first
    assert second is not None and first is not None
    assert second.answer_probability < first.answer_probability
    assert second.busy is first.busy  # the talk model had nothing new


def test_window_forgets_old_attempts() -> None:
    stats = CampaignStats(window=100, refresh_every=1)
    for _ in range(100):
        stats.observe_attempt("answered", 5.0)
    for _ in range(10):
        stats.observe_talk(60.0)
    for _ in range(100):
        stats.observe_attempt("no_answer", 25.0)
    for _ in range(10):
        stats.observe_attempt("answered", 5.0)
    estimates = stats.estimates(min_samples=30)
    assert estimates is not None
    assert estimates.answer_probability == pytest.approx(0.10)


def test_rejects_unknown_outcomes_and_bad_durations() -> None:
    stats = CampaignStats()
    with pytest.raises(ValueError):
        stats.observe_attempt("picked_up", 3.0)
    with pytest.raises(ValueError):
        stats.observe_talk(-1.0)
    with pytest.raises(ValueError):
        stats.observe_wrapup(float("nan"))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.1, 30), min_size=5, max_size=60),
    st.lists(st.floats(0.1, 30), min_size=1, max_size=60),
    st.lists(st.floats(1, 600), min_size=5, max_size=60),
    st.floats(0, 700),
    st.floats(0, 40),
)
def test_curves_are_probabilities_and_grow_with_time(
    answers: list[float], failures: list[float], talks: list[float], elapsed: float, wrap_elapsed: float
) -> None:
    stats = CampaignStats()
    for t in answers:
        stats.observe_attempt("answered", t)
    for t in failures:
        stats.observe_attempt("no_answer", t)
    for t in talks:
        stats.observe_talk(t)
        stats.observe_wrapup(t / 10)
    estimates = stats.estimates(min_samples=5)
    assert estimates is not None
    for curve in (
        estimates.ring.ringing(elapsed, OFFSETS).p,
        estimates.ring.new_call(OFFSETS).p,
        estimates.busy.talking(elapsed, OFFSETS).p,
        estimates.busy.wrapping_up(wrap_elapsed, OFFSETS).p,
    ):
        assert all(0.0 <= p <= 1.0 for p in curve)
        assert all(a <= b + 1e-12 for a, b in zip(curve, curve[1:]))


# --- abandon window ------------------------------------------------------------------------


def test_abandon_state_rate_budget_and_exhaustion() -> None:
    assert AbandonState(0, 0).exhausted()  # a cold start has no budget yet
    assert not AbandonState(100, 0).exhausted()
    state = AbandonState(answered=1000, abandoned=25)
    assert state.rate == 0.025
    assert state.budget() == pytest.approx(0.03 * 1001 - 25)
    assert not state.exhausted()
    assert AbandonState(1000, 30).exhausted()
    assert AbandonState(1000, 25).exhausted(limit=0.02)
    with pytest.raises(ValueError):
        AbandonState(answered=1, abandoned=2)


def test_abandon_window_rolls() -> None:
    window = AbandonWindow(window=3600.0, bucket=60.0)
    window.record(10.0, abandoned=True)
    window.record(20.0, abandoned=False)
    window.record(1800.0, abandoned=False)
    assert window.state(1800.0) == AbandonState(answered=3, abandoned=1)
    # the first minute leaves the window once all of it is older than an hour
    assert window.state(3655.0) == AbandonState(answered=3, abandoned=1)
    assert window.state(3661.0) == AbandonState(answered=1, abandoned=0)
    assert window.state(9000.0, limit=0.02) == AbandonState(answered=0, abandoned=0, limit=0.02)


def test_a_late_record_is_kept_no_shorter_than_its_time_says() -> None:
    window = AbandonWindow(window=3600.0, bucket=60.0)
    window.record(1000.0, abandoned=False)
    window.record(500.0, abandoned=True)  # arrives after a later one
    assert window.state(1000.0 + 3600.0 - 60.0) == AbandonState(answered=2, abandoned=1)
    assert window.state(1020.0 + 3600.0) == AbandonState(answered=0, abandoned=0)
