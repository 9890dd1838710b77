"""Online estimates of a campaign's call statistics, for the pacing.

The daemon and the simulator feed one `CampaignStats` per campaign with plain facts as calls
finish; `estimates()` hands the pacing an immutable `CampaignEstimates`, or None while too
few calls have been seen (the pacing then dials progressively). Distributions are
empirical (the most recent `window` samples), so no shape is assumed: a fixed wrap-up time,
a carrier that gives up at exactly 25 s or a long-tailed talk time are all taken as they are.

The conditional probabilities the pacing asks for ("this call has rung 6 s: will it be
answered in the next 4 s?", "this agent has talked 95 s: free within 10 s?") are computed
once per elapsed-time bucket and remembered inside the estimates object, which is rebuilt
only after enough new observations: that keeps a pacing decision cheap enough to make
every tick for a hundred agents.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

ELAPSED_BUCKET = 0.5
"""Seconds: elapsed times are rounded down to this step before a curve is looked up."""

_WRAP_QUANTILES = 9


class AttemptOutcome(str, Enum):
    """The outcomes that say something about customers, so the pacing learns from them.

    Left out on purpose: `interrupted` and `not_sent` (a fault's), `refused`
    (Asterisk or the trunk refused the Originate: nobody was called).
    """

    answered = "answered"
    busy = "busy"
    no_answer = "no_answer"
    rejected = "rejected"
    congestion = "congestion"
    failed = "failed"
    abandoned = "abandoned"
    machine = "machine"


LIVE_OUTCOMES = frozenset({AttemptOutcome.answered, AttemptOutcome.abandoned})
"""Outcomes where a live person answered and needed an agent."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """An empirical distribution: sorted samples and a right-continuous step CDF."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        return cls(tuple(sorted(values)))

    def __len__(self) -> int:
        return len(self.samples)

    def cdf(self, x: float) -> float:
        if not self.samples:
            return 0.0
        return bisect_right(self.samples, x) / len(self.samples)

    def quantile(self, q: float) -> float:
        if not self.samples:
            raise ValueError("empty distribution")
        index = min(len(self.samples) - 1, max(0, math.ceil(q * len(self.samples)) - 1))
        return self.samples[index]

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 0.0


Curve = tuple[float, ...]
"""One probability per offset of the pacing's time grid."""


class Forecast(NamedTuple):
    """Probabilities of an event by each offset, and their Bernoulli variances."""

    p: Curve
    variance: Curve

    @classmethod
    def of(cls, curve: Curve) -> Forecast:
        return cls(curve, tuple(x * (1.0 - x) for x in curve))


@dataclass(frozen=True, eq=False)
class RingModel:
    """What happens to a call once placed: answered live (when) or failed (when)."""

    answer_probability: float
    answer_time: Distribution
    failure_time: Distribution
    attempts: int
    _memo: dict[tuple[object, ...], Forecast] = field(default_factory=dict, repr=False)

    def new_call(self, offsets: tuple[float, ...]) -> Forecast:
        """P(a call placed now is answered live within each offset)."""
        key = ("new", offsets)
        curve = self._memo.get(key)
        if curve is None:
            p = self.answer_probability
            curve = Forecast.of(tuple(p * self.answer_time.cdf(t) for t in offsets))
            self._memo[key] = curve
        return curve

    def ringing(self, elapsed: float, offsets: tuple[float, ...]) -> Forecast:
        """P(a call still unresolved after `elapsed` s is answered live within each offset)."""
        bucket = math.floor(elapsed / ELAPSED_BUCKET) * ELAPSED_BUCKET
        key = ("ring", bucket, offsets)
        curve = self._memo.get(key)
        if curve is None:
            curve = Forecast.of(self._ringing(bucket, offsets))
            self._memo[key] = curve
        return curve

    def _ringing(self, elapsed: float, offsets: tuple[float, ...]) -> Curve:
        p = self.answer_probability
        answered_by_now = self.answer_time.cdf(elapsed)
        still_ringing = p * (1.0 - answered_by_now) + (1.0 - p) * (1.0 - self.failure_time.cdf(elapsed))
        if still_ringing <= 0.0:
            # Rang longer than any call seen: it is about to be given up, not answered.
            return tuple(0.0 for _ in offsets)
        return tuple(
            min(1.0, p * (self.answer_time.cdf(elapsed + t) - answered_by_now) / still_ringing)
            for t in offsets
        )


@dataclass(frozen=True, eq=False)
class BusyModel:
    """How long an agent stays busy: talk, then wrap-up."""

    talk_time: Distribution
    wrapup_time: Distribution
    _memo: dict[tuple[object, ...], Forecast] = field(default_factory=dict, repr=False)
    _wrap_points: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    _talk_cdf: tuple[float, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        # A few quantiles of the wrap-up (with their weights, merged when equal, as for a
        # fixed wrap-up time) stand in for its whole distribution when it is added to the
        # remaining talk time: an exact convolution per lookup costs too much.
        weights: dict[float, float] = {}
        if self.wrapup_time.samples:
            for i in range(_WRAP_QUANTILES):
                point = self.wrapup_time.quantile((i + 0.5) / _WRAP_QUANTILES)
                weights[point] = weights.get(point, 0.0) + 1.0 / _WRAP_QUANTILES
        else:
            weights[0.0] = 1.0
        object.__setattr__(self, "_wrap_points", tuple(weights.items()))
        # The talk CDF on a grid of ELAPSED_BUCKET steps: a table lookup instead of a
        # search, rounding down, which only ever makes an agent look busy a bit longer.
        samples = self.talk_time.samples
        steps = int(samples[-1] / ELAPSED_BUCKET) + 2 if samples else 1
        object.__setattr__(self, "_talk_cdf", tuple(self.talk_time.cdf(i * ELAPSED_BUCKET) for i in range(steps)))

    def _talk_cdf_at(self, x: float) -> float:
        if x < 0.0:
            return 0.0
        index = int(x / ELAPSED_BUCKET)
        table = self._talk_cdf
        return table[index] if index < len(table) else 1.0

    def talking(self, elapsed: float, offsets: tuple[float, ...]) -> Forecast:
        """P(an agent `elapsed` s into a call is free (talk and wrap-up done) within each offset)."""
        bucket = math.floor(elapsed / ELAPSED_BUCKET) * ELAPSED_BUCKET
        key = ("talk", bucket, offsets)
        curve = self._memo.get(key)
        if curve is None:
            curve = Forecast.of(self._talking(bucket, offsets))
            self._memo[key] = curve
        return curve

    def _talking(self, elapsed: float, offsets: tuple[float, ...]) -> Curve:
        cdf = self._talk_cdf_at
        done = cdf(elapsed)
        remaining = 1.0 - done
        if remaining <= 0.0:
            # Talking longer than any call seen: no basis for a forecast, so this agent is
            # not counted on (the safe side for the abandon rate).
            return tuple(0.0 for _ in offsets)
        points = self._wrap_points
        return tuple(
            min(1.0, sum(weight * max(0.0, cdf(elapsed + t - w) - done) for w, weight in points) / remaining)
            for t in offsets
        )

    def wrapping_up(self, wrapup_elapsed: float | None, offsets: tuple[float, ...]) -> Forecast:
        """P(an agent in wrap-up is free within each offset); None = time in wrap-up unknown."""
        if wrapup_elapsed is None:
            key: tuple[object, ...] = ("wrap?", offsets)
            bucket = 0.0
        else:
            bucket = math.floor(wrapup_elapsed / ELAPSED_BUCKET) * ELAPSED_BUCKET
            key = ("wrap", bucket, offsets)
        forecast = self._memo.get(key)
        if forecast is None:
            forecast = Forecast.of(self._wrapping_up(wrapup_elapsed, bucket, offsets))
            self._memo[key] = forecast
        return forecast

    def _wrapping_up(self, wrapup_elapsed: float | None, bucket: float, offsets: tuple[float, ...]) -> Curve:
        wrap = self.wrapup_time
        if not wrap.samples:
            return tuple(1.0 for _ in offsets)
        done = wrap.cdf(bucket) if wrapup_elapsed is not None else 0.0
        remaining = 1.0 - done
        if remaining <= 0.0:
            return tuple(1.0 for _ in offsets)  # overdue: free any moment now
        return tuple(min(1.0, (wrap.cdf(bucket + t) - done) / remaining) for t in offsets)


@dataclass(frozen=True, eq=False)
class CampaignEstimates:
    ring: RingModel
    busy: BusyModel

    @property
    def answer_probability(self) -> float:
        return self.ring.answer_probability


class CampaignStats:
    """Running statistics of one campaign, fed with facts as calls finish.

    No clock and no I/O: the caller says what happened and how long it took. The same
    object type is driven by the daemon and by `dialer simulate`.
    """

    def __init__(self, window: int = 2000, refresh_every: int = 200) -> None:
        if window < 10 or refresh_every < 1:
            raise ValueError("window must be at least 10 and refresh_every at least 1")
        self.window = window
        self.refresh_every = refresh_every
        self._live: deque[bool] = deque(maxlen=window)
        self._answer_times: deque[float] = deque(maxlen=window)
        self._failure_times: deque[float] = deque(maxlen=window)
        self._talk: deque[float] = deque(maxlen=window)
        self._wrapup: deque[float] = deque(maxlen=window)
        self._ring_new = 0
        self._busy_new = 0
        self._ring: RingModel | None = None
        self._busy: BusyModel | None = None
        self._estimates: CampaignEstimates | None = None
        self.attempts_seen = 0
        self.talks_seen = 0

    def observe_attempt(self, outcome: AttemptOutcome | str, seconds: float) -> None:
        """One attempt's ringing phase is over: `seconds` from dialing to answer or failure.

        For `answered` and `abandoned` that is the time to answer; for the others the time
        until the failure was known (busy signal, ring timeout, rejection...).
        """
        outcome = AttemptOutcome(outcome)
        _check_duration(seconds)
        live = outcome in LIVE_OUTCOMES
        self._live.append(live)
        (self._answer_times if live else self._failure_times).append(seconds)
        self._ring_new += 1
        self.attempts_seen += 1

    def observe_talk(self, seconds: float) -> None:
        """A bridged call ended after `seconds` of talk."""
        _check_duration(seconds)
        self._talk.append(seconds)
        self._busy_new += 1
        self.talks_seen += 1

    def observe_wrapup(self, seconds: float) -> None:
        """An agent finished wrap-up after `seconds`."""
        _check_duration(seconds)
        self._wrapup.append(seconds)
        self._busy_new += 1

    def wrapup_samples(self) -> tuple[float, ...]:
        """The wrap-up times learned so far, oldest first (the supervisor page shows them)."""
        return tuple(self._wrapup)

    def estimates(self, min_samples: int = 30) -> CampaignEstimates | None:
        """Current estimates, or None until `min_samples` attempts and enough answers and
        finished calls are seen to say anything (a cold start)."""
        live = sum(self._live)
        enough_talks = max(5, min_samples // 6)
        if len(self._live) < min_samples or live < max(5, min_samples // 6) or len(self._talk) < enough_talks:
            return None
        changed = False
        if self._ring is None or self._ring_new >= _refresh_due(self.refresh_every, self._ring.attempts):
            self._ring = RingModel(
                answer_probability=live / len(self._live),
                answer_time=Distribution.of(self._answer_times),
                failure_time=Distribution.of(self._failure_times),
                attempts=len(self._live),
            )
            self._ring_new = 0
            changed = True
        if self._busy is None or self._busy_new >= _refresh_due(
            self.refresh_every, len(self._busy.talk_time) + len(self._busy.wrapup_time)
        ):
            self._busy = BusyModel(
                talk_time=Distribution.of(self._talk), wrapup_time=Distribution.of(self._wrapup)
            )
            self._busy_new = 0
            changed = True
        if changed or self._estimates is None:
            self._estimates = CampaignEstimates(ring=self._ring, busy=self._busy)
        return self._estimates


def _refresh_due(refresh_every: int, samples_in_model: int) -> int:
    # Early on a quarter more data changes the picture, later `refresh_every` new facts do;
    # rebuilding on every fact would throw away the remembered curves every tick.
    return max(1, min(refresh_every, samples_in_model // 4))


def _check_duration(seconds: float) -> None:
    if not (seconds >= 0.0 and math.isfinite(seconds)):
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {seconds}")
