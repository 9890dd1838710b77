"""How fast and how often Originates may go to one trunk (pure: time is an argument).

Carriers cap calls per second and answer 503 above the cap, which reads like
congestion; and a trunk Asterisk keeps refusing (a missing endpoint, a broken
dialplan, a PBX shutting down) must not be hammered. So each trunk has:

- a token bucket: `calls_per_second` on average, at most `burst` at once;
- a failure backoff: after `REFUSALS_BEFORE_BACKOFF` refusals in a row, no
  Originate for a delay that doubles with each further refusal (capped) and
  ends at the first call Asterisk accepts; once a delay is over, one probe
  call goes out and its fate decides whether the trunk is healthy again.

One `TrunkGate` per trunk is shared by every campaign dialing through it; a
campaign asks for `grant` before it leases leads and gives back what it did
not dial, so no lead is leased that the trunk would not let go now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_CALLS_PER_SECOND = 10.0
"""For trunks that `dialer.yaml`'s `trunks` does not list."""

REFUSALS_BEFORE_BACKOFF = 3
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0
PROBE_TIMEOUT_SECONDS = 10.0
"""A probe whose fate is not known by then (a lost event) lets the next one go."""

ACTIVE_SECONDS = 2.0
"""A campaign that asked this recently shares the trunk's calls with the others..."""
IDLE_SECONDS = 5.0
"""... unless it gave back a whole grant this recently: it had nothing due, and
counting it would halve the share of the campaigns that dial. After this long it
is counted again, so a campaign whose leads come due is never starved for longer."""


def trunk_key(template: str) -> str:
    """The trunk a campaign dials through: the endpoint after '@' in its dial string template,
    or the whole template when it has none (`PJSIP/{number}@carrier` -> `carrier`)."""
    _, at, endpoint = template.partition("@")
    return endpoint if at else template


def burst_for(calls_per_second: float, tick_seconds: float) -> float:
    """Calls that may leave at once: one tick's worth (campaigns dial once a tick), at least one.

    Whole calls: a fractional cap would throw away the fraction each tick and
    hold the trunk under its rate.
    """
    return float(max(1, math.ceil(calls_per_second * tick_seconds - 1e-9)))


@dataclass
class TokenBucket:
    """`rate` tokens a second, never more than `burst` saved up; starts full."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def available(self, now: float) -> int:
        self._refill(now)
        # A hair under a whole token counts as one: float sums of rate * dt fall short.
        return int(math.floor(self.tokens + 1e-9))

    def take(self, count: int, now: float) -> int:
        """Take up to `count` whole tokens; returns how many were taken."""
        taken = max(0, min(count, self.available(now)))
        self.tokens -= taken
        return taken

    def give_back(self, count: int) -> None:
        """Tokens taken but not used (the leads were fewer, or screened out)."""
        self.tokens = min(self.burst, self.tokens + max(0, count))

    def retune(self, rate: float, burst: float, now: float) -> None:
        self._refill(now)
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, burst)


@dataclass
class FailureBackoff:
    """Refusals in a row, and until when nothing may be sent."""

    threshold: int = REFUSALS_BEFORE_BACKOFF
    first: float = BACKOFF_FIRST_SECONDS
    cap: float = BACKOFF_MAX_SECONDS
    consecutive: int = 0
    until: float | None = None
    probe_sent_at: float | None = None
    refusals: int = 0
    """All refusals since start (a counter for metrics)."""
    last_error: str | None = None

    def refused(self, now: float, error: str | None = None) -> None:
        self.consecutive += 1
        self.refusals += 1
        self.last_error = error
        self.probe_sent_at = None
        if self.consecutive >= self.threshold:
            self.until = now + self.delay()

    def accepted(self) -> None:
        self.consecutive = 0
        self.until = None
        self.probe_sent_at = None

    def delay(self) -> float:
        steps = max(0, self.consecutive - self.threshold)
        # min() first keeps 2**steps from growing without bound on a long outage.
        return min(self.cap, self.first * 2 ** min(steps, 32))

    @property
    def tripped(self) -> bool:
        return self.consecutive >= self.threshold

    def blocked(self, now: float) -> bool:
        """Whether a backoff delay is running now."""
        return self.until is not None and now < self.until

    def allows(self, now: float) -> int | None:
        """How many calls the backoff lets go now: 0, 1 (a probe), or None (no limit)."""
        if not self.tripped:
            return None
        if self.blocked(now):
            return 0
        if self.probe_sent_at is not None and now - self.probe_sent_at < PROBE_TIMEOUT_SECONDS:
            return 0
        return 1


@dataclass(frozen=True)
class TrunkView:
    """What `/status` and `/metrics` show of one trunk."""

    name: str
    calls_per_second: float
    backed_off: bool
    backoff_seconds_left: float
    consecutive_refusals: int
    refusals: int
    last_error: str | None


@dataclass
class TrunkGate:
    name: str
    bucket: TokenBucket
    backoff: FailureBackoff = field(default_factory=FailureBackoff)
    _asked: dict[str, float] = field(default_factory=dict)
    _granted: dict[str, int] = field(default_factory=dict)
    """Calls granted to each campaign still active: the odd call goes to the one that had fewest."""
    _last: dict[str, tuple[float, int]] = field(default_factory=dict)
    _idle_since: dict[str, float] = field(default_factory=dict)

    def grant(self, user: str, want: int, now: float) -> int:
        """Calls `user` (a campaign) may originate now, taken from the trunk; at most `want`.

        Campaigns sharing the trunk split what it has: those that asked within
        ACTIVE_SECONDS and have not had their turn at this `now` get an equal
        share, the odd call going to the one granted fewest so far, so none starves.
        """
        self._last[user] = (now, 0)
        if want <= 0:
            return 0
        others = [
            u
            for u, at in self._asked.items()
            if u != user and at != now and now - at <= ACTIVE_SECONDS and not self._idle(u, now)
        ]
        self._asked[user] = now
        for name in [u for u, at in self._asked.items() if now - at > ACTIVE_SECONDS]:
            del self._asked[name]
            self._granted.pop(name, None)
            self._idle_since.pop(name, None)
            self._last.pop(name, None)
        limit = self.backoff.allows(now)
        whole = self.bucket.available(now)
        if limit is not None:
            whole = min(whole, limit)
        if whole <= 0:
            return 0
        if others:
            sharing = sorted([user, *others], key=lambda u: (self._granted.get(u, 0), u))
            share, odd = divmod(whole, len(sharing))
            whole = share + (1 if sharing.index(user) < odd else 0)
        taken = self.bucket.take(min(want, whole), now)
        self._last[user] = (now, taken)
        if taken:
            self._granted[user] = self._granted.get(user, 0) + taken
            if limit is not None:
                self.backoff.probe_sent_at = now
        return taken

    def give_back(self, user: str, count: int) -> None:
        """Calls granted to `user` that it did not place (fewer leads due, or screened out)."""
        at, taken = self._last.get(user, (0.0, 0))
        if taken > 0:
            if count >= taken:
                self._idle_since[user] = at
            else:
                self._idle_since.pop(user, None)
        if count > 0:
            self.bucket.give_back(count)
            if user in self._granted:
                self._granted[user] = max(0, self._granted[user] - count)
            if self.backoff.tripped:
                self.backoff.probe_sent_at = None

    def _idle(self, user: str, now: float) -> bool:
        since = self._idle_since.get(user)
        return since is not None and now - since <= IDLE_SECONDS

    def refused(self, now: float, error: str | None = None) -> None:
        self.backoff.refused(now, error)

    def accepted(self) -> None:
        self.backoff.accepted()

    def view(self, now: float) -> TrunkView:
        backoff = self.backoff
        return TrunkView(
            name=self.name,
            calls_per_second=self.bucket.rate,
            backed_off=backoff.tripped,
            backoff_seconds_left=round(max(0.0, (backoff.until or now) - now), 1),
            consecutive_refusals=backoff.consecutive,
            refusals=backoff.refusals,
            last_error=backoff.last_error,
        )


class Trunks:
    """Every trunk's gate, made on first use; the rates come from the config."""

    def __init__(self, rates: dict[str, float] | None = None, tick_seconds: float = 0.5) -> None:
        self._rates: dict[str, float] = dict(rates or {})
        self._tick = tick_seconds
        self._gates: dict[str, TrunkGate] = {}

    def rate(self, name: str) -> float:
        return self._rates.get(name, DEFAULT_CALLS_PER_SECOND)

    def gate(self, name: str) -> TrunkGate:
        gate = self._gates.get(name)
        if gate is None:
            rate = self.rate(name)
            gate = TrunkGate(name, TokenBucket(rate, burst_for(rate, self._tick)))
            self._gates[name] = gate
        return gate

    def configure(self, rates: dict[str, float], tick_seconds: float, now: float) -> None:
        """A config reload: new rates apply to the gates at once, their backoff state kept."""
        self._rates, self._tick = dict(rates), tick_seconds
        for name, gate in self._gates.items():
            rate = self.rate(name)
            gate.bucket.retune(rate, burst_for(rate, tick_seconds), now)

    def views(self, now: float) -> list[TrunkView]:
        """Trunks in use and trunks configured, by name."""
        names = sorted(set(self._gates) | set(self._rates))
        return [self._gates[n].view(now) if n in self._gates else self.gate(n).view(now) for n in names]
