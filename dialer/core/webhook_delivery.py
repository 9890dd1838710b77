"""Webhook deliveries, pure: the signature, the retry delay and the outbox's state changes.

An outbox row is `pending` (due at `next_try_at`), `delivered` (a 2xx came back) or `dead`
(every allowed try failed; `dialer webhooks requeue` makes it pending again). Time and
randomness are arguments, so the daemon, the tests and a receiver's verifier share this code.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

SIGNATURE_HEADER = "X-Dialer-Signature"
EVENT_ID_HEADER = "X-Dialer-Event-Id"
ATTEMPT_HEADER = "X-Dialer-Delivery-Attempt"
SIGNATURE_TOLERANCE = 300
"""Seconds a receiver should accept between the signed timestamp and its own clock."""


class OutboxState(str, Enum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"


def signed_payload(body: bytes, timestamp: int) -> bytes:
    return str(timestamp).encode() + b"." + body


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`."""
    digest = hmac.new(secret, signed_payload(body, timestamp), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, body: bytes, header: str, now: float, tolerance: float = SIGNATURE_TOLERANCE) -> bool:
    """What a receiver does: the header parses, its time is within `tolerance` of `now`,
    and one of its v1 values matches (constant-time compare)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = hmac.new(secret, signed_payload(body, timestamp), hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


def retry_delay(tries: int, first: float, cap: float, rand: float) -> float:
    """Seconds to wait after the `tries`-th failed try: `first` doubling per try up to `cap`,
    half of it fixed and half jittered by `rand` in [0, 1) so that receivers coming back
    are not hit by every sender at the same instant."""
    if tries < 1:
        raise ValueError("tries counts from 1")
    if not 0 <= rand < 1:
        raise ValueError("rand must be in [0, 1)")
    base = min(cap, first * 2 ** min(tries - 1, 62))
    return base / 2 + base / 2 * rand


@dataclass(frozen=True)
class Transition:
    state: OutboxState
    tries: int
    next_try_at: datetime | None


def after_try(
    tries_before: int,
    ok: bool,
    *,
    max_attempts: int,
    now: datetime,
    first_retry: float,
    max_retry: float,
    rand: float,
) -> Transition:
    """The row's state after one more try that succeeded (`ok`) or failed."""
    tries = tries_before + 1
    if ok:
        return Transition(OutboxState.delivered, tries, None)
    if tries >= max_attempts:
        return Transition(OutboxState.dead, tries, None)
    return Transition(
        OutboxState.pending, tries, now + timedelta(seconds=retry_delay(tries, first_retry, max_retry, rand))
    )


def requeue(state: OutboxState, now: datetime) -> Transition:
    """A dead delivery back in the queue, due now, with its tries counted afresh.

    Raises ValueError for one that is not dead: a delivered event is not sent twice by
    hand, and a pending one is already queued."""
    if state is not OutboxState.dead:
        raise ValueError(f"only a dead delivery can be requeued (this one is {state.value})")
    return Transition(OutboxState.pending, 0, now)


def succeeded(status: int | None) -> bool:
    """A 2xx answer. Redirects are not followed, so a 3xx is a failure like any other."""
    return status is not None and 200 <= status < 300
