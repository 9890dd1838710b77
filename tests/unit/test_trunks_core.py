"""The pure trunk limits (dialer.core.trunks): a token bucket per trunk, shared fairly by
the campaigns on it, and the failure backoff. Time is an argument."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.core.trunks import (
    BACKOFF_FIRST_SECONDS,
    BACKOFF_MAX_SECONDS,
    REFUSALS_BEFORE_BACKOFF,
    TokenBucket,
    TrunkGate,
    Trunks,
    burst_for,
    trunk_key,
)


def test_the_trunk_is_the_endpoint_after_the_at_sign() -> None:
    assert trunk_key("PJSIP/{number}@carrier") == "carrier"
    assert trunk_key("SIP/{number}") == "SIP/{number}"
    assert trunk_key("IAX2/user@host:4569/{number}") == "host:4569/{number}"


# -- the pure limiter ---------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3, allow_nan=False),  # seconds since the step before
        st.integers(min_value=0, max_value=50),  # calls wanted
        st.integers(min_value=0, max_value=50),  # of those granted, how many go unused
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.floats(min_value=0.1, max_value=1000, allow_nan=False),
    burst_seconds=st.floats(min_value=0, max_value=2, allow_nan=False),
    plan=steps,
)
def test_a_token_bucket_never_lets_more_than_rate_times_t_plus_burst(
    rate: float, burst_seconds: float, plan: list[tuple[float, int, int]]
) -> None:
    burst = max(1.0, rate * burst_seconds)
    bucket = TokenBucket(rate, burst)
    now = 1000.0
    used: list[tuple[float, int]] = []
    for dt, want, unused in plan:
        now += dt
        taken = bucket.take(want, now)
        assert 0 <= taken <= want
        back = min(unused, taken)
        bucket.give_back(back)
        used.append((now, taken - back))
    for i in range(len(used)):
        total = 0
        for j in range(i, len(used)):
            total += used[j][1]
            assert total <= rate * (used[j][0] - used[i][0]) + burst + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=100, allow_nan=False),
    plan=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.1, 0.5, 1.0]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 30),
            st.integers(0, 30),
        ),
        max_size=80,
    ),
)
def test_a_gate_shared_by_campaigns_never_grants_more_than_the_bucket_allows(
    rate: float, plan: list[tuple[float, str, int, int]]
) -> None:
    burst = burst_for(rate, 0.5)
    gate = TrunkGate("carrier", TokenBucket(rate, burst))
    now = 0.0
    granted: list[tuple[float, int]] = []
    for dt, user, want, unused in plan:
        now += dt
        got = gate.grant(user, want, now)
        assert 0 <= got <= want
        back = min(unused, got)
        gate.give_back(user, back)
        granted.append((now, got - back))
    for i in range(len(granted)):
        total = 0
        for j in range(i, len(granted)):
            total += granted[j][1]
            assert total <= rate * (granted[j][0] - granted[i][0]) + burst + 1e-6


def test_campaigns_sharing_a_scarce_trunk_take_turns() -> None:
    gate = TrunkGate("carrier", TokenBucket(2.0, 1.0))  # one call per half-second tick
    served: list[str] = []
    now = 0.0
    for _ in range(20):
        for user in ("a", "b"):  # the daemon ticks its runners in one order, always
            if gate.grant(user, 10, now):
                served.append(user)
        now += 0.5
    assert abs(served.count("a") - served.count("b")) <= 1, served


def test_backoff_delays_double_up_to_the_cap_and_a_success_resets_them() -> None:
    gate = TrunkGate("carrier", TokenBucket(1000.0, 1000.0))
    for _ in range(REFUSALS_BEFORE_BACKOFF - 1):
        gate.refused(0.0)
    assert gate.grant("a", 5, 0.0) == 5  # not yet: a refusal or two is not a broken trunk
    gate.give_back("a", 5)
    gate.refused(0.0)
    assert gate.grant("a", 5, 0.0) == 0
    assert gate.grant("a", 5, BACKOFF_FIRST_SECONDS - 0.01) == 0
    assert gate.grant("a", 5, BACKOFF_FIRST_SECONDS) == 1  # one probe
    assert gate.grant("b", 5, BACKOFF_FIRST_SECONDS + 1) == 0  # while it is out, nobody else
    delays = []
    now = BACKOFF_FIRST_SECONDS
    for _ in range(12):
        gate.refused(now)
        delays.append(gate.backoff.until - now)  # type: ignore[operator]
        now = gate.backoff.until  # type: ignore[assignment]
        assert gate.grant("a", 5, now) == 1
    assert delays[:3] == [2 * BACKOFF_FIRST_SECONDS, 4 * BACKOFF_FIRST_SECONDS, 8 * BACKOFF_FIRST_SECONDS]
    assert max(delays) == BACKOFF_MAX_SECONDS and math.isfinite(max(delays))
    gate.accepted()
    assert gate.grant("a", 5, now) == 5 and not gate.view(now).backed_off


def test_a_reload_retunes_the_rate_and_keeps_the_backoff() -> None:
    trunks = Trunks({"carrier": 4.0}, tick_seconds=0.5)
    gate = trunks.gate("carrier")
    assert (gate.bucket.rate, gate.bucket.burst) == (4.0, 2.0)
    for _ in range(REFUSALS_BEFORE_BACKOFF):
        gate.refused(0.0, "Originate failed")
    trunks.configure({"carrier": 1.0}, tick_seconds=0.5, now=1.0)
    assert trunks.gate("carrier") is gate and (gate.bucket.rate, gate.bucket.burst) == (1.0, 1.0)
    assert gate.bucket.tokens <= 1.0 and gate.view(1.0).backed_off
    assert trunks.gate("new").bucket.rate == 10.0  # the default for a trunk not listed


def test_a_clock_going_back_gives_no_tokens() -> None:
    bucket = TokenBucket(1.0, 1.0)
    assert bucket.take(1, 100.0) == 1
    assert bucket.take(1, 50.0) == 0
    assert bucket.take(1, 100.5) == 0
    assert bucket.take(1, 101.0) == 1


def test_a_probe_given_back_unused_lets_another_campaign_probe() -> None:
    gate = TrunkGate("carrier", TokenBucket(10.0, 5.0))
    for _ in range(REFUSALS_BEFORE_BACKOFF):
        gate.refused(0.0)
    assert gate.grant("a", 3, BACKOFF_FIRST_SECONDS) == 1
    gate.give_back("a", 1)  # campaign a had no lead due after all
    assert gate.grant("b", 3, BACKOFF_FIRST_SECONDS) == 1
    assert gate.grant("a", 3, BACKOFF_FIRST_SECONDS + 1) == 0


def test_a_campaign_with_nothing_due_does_not_halve_the_share_of_one_that_dials() -> None:
    gate = TrunkGate("carrier", TokenBucket(10.0, burst_for(10.0, 0.5)))
    placed = 0
    now = 0.0
    for _ in range(20):
        placed += gate.grant("busy", 10, now)
        # "idle" ticks after it, is granted what is left, and gives it all back.
        gate.give_back("idle", gate.grant("idle", 10, now))
        now += 0.5
    # Counted again once in a while (it might have leads due by then): ~95 % of the rate.
    assert placed >= 0.9 * 20 * 5, placed


def test_a_probe_whose_fate_never_comes_lets_another_go_after_the_probe_timeout() -> None:
    from dialer.core.trunks import PROBE_TIMEOUT_SECONDS

    gate = TrunkGate("carrier", TokenBucket(10.0, 5.0))
    for _ in range(REFUSALS_BEFORE_BACKOFF):
        gate.refused(0.0)
    start = BACKOFF_FIRST_SECONDS
    assert gate.grant("a", 3, start) == 1  # the probe; its events are lost (a dropped AMI link)
    assert gate.grant("a", 3, start + PROBE_TIMEOUT_SECONDS - 0.1) == 0
    assert gate.grant("a", 3, start + PROBE_TIMEOUT_SECONDS) == 1
    assert gate.view(start + PROBE_TIMEOUT_SECONDS).backed_off
