"""The pure half of disposition webhooks: signing, the retry delay and the outbox's transitions."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.core.webhook_delivery import (
    OutboxState,
    after_try,
    requeue,
    retry_delay,
    signature,
    succeeded,
    verify,
)

SECRET = b"0123456789abcdef-secret"
BODY = b'{"event_id":"e1","campaign":"revisit"}'
NOW = datetime(2026, 11, 30, 12, 0, 0)


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    header = signature(SECRET, BODY, 1_764_500_000)
    expected = hmac.new(SECRET, b"1764500000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1764500000,v1={expected}"


def test_verify_accepts_its_own_signature_and_refuses_any_change() -> None:
    header = signature(SECRET, BODY, 1000)
    assert verify(SECRET, BODY, header, now=1000)
    assert verify(SECRET, BODY, header, now=1299)
    assert not verify(SECRET, BODY + b" ", header, now=1000), "one byte more in the body"
    assert not verify(b"another-secret-of-16+", BODY, header, now=1000), "another secret"
    assert not verify(SECRET, BODY, header.replace("t=1000", "t=1001"), now=1000), "a moved timestamp"
    assert not verify(SECRET, BODY, header, now=1000 + 301), "replayed after the tolerance"
    assert not verify(SECRET, BODY, header, now=1000 - 301), "from the future"
    for broken in ("", "t=1000", "v1=abc", "t=x,v1=" + header.split("v1=")[1], "garbage"):
        assert not verify(SECRET, BODY, broken, now=1000), broken


def test_verify_takes_any_of_several_v1_values_so_secrets_can_be_rotated() -> None:
    old = signature(b"old-secret-0123456789", BODY, 1000).split("v1=")[1]
    new = signature(SECRET, BODY, 1000).split("v1=")[1]
    assert verify(SECRET, BODY, f"t=1000,v1={old},v1={new}", now=1000)


@given(body=st.binary(max_size=2000), t=st.integers(0, 10**10))
def test_sign_then_verify_round_trips(body: bytes, t: int) -> None:
    assert verify(SECRET, body, signature(SECRET, body, t), now=t)


def test_retry_delay_doubles_from_first_up_to_the_cap_with_half_of_it_jittered() -> None:
    assert [retry_delay(n, 10, 900, 0.0) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 320, 450]
    assert [retry_delay(n, 10, 900, 0.999999) for n in range(1, 4)] == pytest.approx([10, 20, 40], rel=1e-5)
    assert retry_delay(10_000, 10, 900, 0.5) == 675  # no overflow far out


@given(tries=st.integers(1, 200), first=st.floats(0.1, 3600), rand=st.floats(0, 0.9999999))
def test_retry_delay_stays_within_half_and_all_of_its_base(tries: int, first: float, rand: float) -> None:
    cap = 3600.0
    base = min(cap, first * 2 ** (tries - 1))
    delay = retry_delay(tries, first, cap, rand)
    assert base / 2 <= delay <= base


def test_retry_delay_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        retry_delay(0, 10, 900, 0.5)
    with pytest.raises(ValueError):
        retry_delay(1, 10, 900, 1.0)


def _try(tries_before: int, ok: bool, max_attempts: int = 3):  # type: ignore[no-untyped-def]
    return after_try(tries_before, ok, max_attempts=max_attempts, now=NOW, first_retry=10, max_retry=900, rand=0.0)


def test_a_success_delivers_at_any_try() -> None:
    for before in (0, 1, 2):
        t = _try(before, True)
        assert (t.state, t.tries, t.next_try_at) == (OutboxState.delivered, before + 1, None)


def test_a_failure_stays_pending_with_the_backoff_until_the_last_try_then_dead() -> None:
    first = _try(0, False)
    assert (first.state, first.tries, first.next_try_at) == (OutboxState.pending, 1, NOW + timedelta(seconds=5))
    second = _try(1, False)
    assert (second.state, second.tries, second.next_try_at) == (OutboxState.pending, 2, NOW + timedelta(seconds=10))
    third = _try(2, False)
    assert (third.state, third.tries, third.next_try_at) == (OutboxState.dead, 3, None)


def test_one_allowed_try_goes_dead_at_the_first_failure() -> None:
    assert _try(0, False, max_attempts=1).state is OutboxState.dead


def test_only_a_dead_letter_is_requeued_due_now_with_its_tries_afresh() -> None:
    again = requeue(OutboxState.dead, NOW)
    assert (again.state, again.tries, again.next_try_at) == (OutboxState.pending, 0, NOW)
    for state in (OutboxState.pending, OutboxState.delivered):
        with pytest.raises(ValueError):
            requeue(state, NOW)


def test_only_2xx_counts_as_delivered() -> None:
    assert [s for s in (None, 100, 199, 200, 204, 299, 301, 302, 307, 400, 404, 500, 503) if succeeded(s)] == [
        200,
        204,
        299,
    ]


def test_the_receiver_example_in_the_campaign_readme_verifies_our_signatures() -> None:
    """campaigns/README.md shows receivers how to verify; that code must agree with ours."""
    import re
    import time
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "campaigns" / "README.md").read_text()
    section = readme[readme.index("**Verifying it.**") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(code.group(1), namespace)
    verified = namespace["verified"]
    now = int(time.time())
    header = signature(SECRET, BODY, now)
    assert verified(SECRET, BODY, header)  # type: ignore[operator]
    assert not verified(SECRET, BODY + b"x", header)  # type: ignore[operator]
    assert not verified(b"wrong-secret-0123456", BODY, header)  # type: ignore[operator]
    assert not verified(SECRET, BODY, signature(SECRET, BODY, now - 600))  # type: ignore[operator]
    assert not verified(SECRET, BODY, "v1=" + header.split("v1=")[1])  # type: ignore[operator]
