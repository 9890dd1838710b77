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
from typing import NamedTuple, TypeVar

from dialer.core.outcomes import LEARNABLE, LIVE_ANSWER, Outcome

T = TypeVar("T")

ELAPSED_BUCKET = 0.5
"""Seconds: elapsed times are rounded down to this step before a curve is looked up."""

_WRAP_QUANTILES = 9


@dataclass(frozen=True, slots=True)
class Distribution:
    """A step CDF over sorted sample times.

    Plain samples weigh alike. A survival estimate (`kaplan_meier`, `competing`) gives each
    distinct event time its own cumulative probability, and may leave mass beyond the
    last event (`cdf` never reaches 1): the share of calls still going on at the longest
    time anyone has seen, about whom nothing more is known yet.
    """

    samples: tuple[float, ...]
    cumulative: tuple[float, ...] = ()
    """CDF just after each sample; empty for plain samples (i / n)."""

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        return cls(tuple(sorted(values)))

    @classmethod
    def kaplan_meier(
        cls, finished: Iterable[float], in_progress: Iterable[float] = (), min_at_risk: int = 1
    ) -> Distribution:
        """Product-limit estimate of a duration from finished ones and ones still going on.

        A call still in progress after x s is a censored observation: it lasts longer than
        x, how much longer is unknown. Leaving it out (as counting only finished calls does)
        keeps the short calls and drops the long ones, the bias that made a campaign's
        first minutes look like 12 s talks when they were 180 s.
        """
        fractions = competing({"event": list(finished)}, in_progress, min_at_risk)
        return fractions.get("event", cls(()))

    def __len__(self) -> int:
        return len(self.samples)

    def cdf(self, x: float) -> float:
        if not self.samples:
            return 0.0
        index = bisect_right(self.samples, x)
        if not self.cumulative:
            return index / len(self.samples)
        return self.cumulative[index - 1] if index else 0.0

    @property
    def total(self) -> float:
        """The probability the duration ends at all within the times seen (1 for plain samples)."""
        if not self.samples:
            return 0.0
        return self.cumulative[-1] if self.cumulative else 1.0

    def quantile(self, q: float) -> float:
        if not self.samples:
            raise ValueError("empty distribution")
        if self.cumulative:
            index = bisect_right(self.cumulative, q - 1e-12)
            return self.samples[min(index, len(self.samples) - 1)]
        index = min(len(self.samples) - 1, max(0, math.ceil(q * len(self.samples)) - 1))
        return self.samples[index]

    @property
    def mean(self) -> float:
        """Mean of the samples seen; for a survival estimate, of the part that ended (a lower bound)."""
        if not self.samples:
            return 0.0
        if not self.cumulative:
            return sum(self.samples) / len(self.samples)
        previous, total = 0.0, 0.0
        for value, cum in zip(self.samples, self.cumulative):
            total += value * (cum - previous)
            previous = cum
        return total


MIN_AT_RISK = 10
"""A survival curve stops where fewer calls than this were still going on: past that point
one call's end would move it by a tenth or more (the last call seen ending would take the
curve to 1, as if every longer call were about to end). Beyond it nothing is assumed."""


def competing(
    events: dict[str, Iterable[float]], in_progress: Iterable[float] = (), min_at_risk: int = 1
) -> dict[str, Distribution]:
    """Aalen-Johansen estimate: the probability of each kind of end by each time.

    `events` maps a kind of end (answered, failed...) to the durations after which calls
    ended that way; `in_progress` holds the elapsed times of calls not ended yet (censored).
    Each returned distribution's `cdf` is the sub-distribution of its kind: their sum at t
    is the probability of having ended by t, and `total` of each is its share among the
    calls whose end fell within the times seen (the curve stops once fewer than
    `min_at_risk` calls are left).
    """
    timeline: list[tuple[float, int, str]] = []
    for kind, durations in events.items():
        timeline.extend((float(t), 0, kind) for t in durations)
    # A call still going on at x was at risk at x: censored times sort after events at the same time.
    timeline.extend((float(t), 1, "") for t in in_progress)
    timeline.sort()
    at_risk = len(timeline)
    survival = 1.0
    cumulative = {kind: 0.0 for kind in events}
    times: dict[str, list[float]] = {kind: [] for kind in events}
    cums: dict[str, list[float]] = {kind: [] for kind in events}
    i = 0
    while i < len(timeline) and at_risk >= min_at_risk:
        t = timeline[i][0]
        ended: dict[str, int] = {}
        censored = 0
        while i < len(timeline) and timeline[i][0] == t:
            _, is_censored, kind = timeline[i]
            if is_censored:
                censored += 1
            else:
                ended[kind] = ended.get(kind, 0) + 1
            i += 1
        if ended:
            for kind, count in ended.items():
                cumulative[kind] += survival * count / at_risk
                times[kind].append(t)
                cums[kind].append(min(1.0, cumulative[kind]))
            survival *= 1.0 - sum(ended.values()) / at_risk
        at_risk -= sum(ended.values()) + censored
    return {kind: Distribution(tuple(times[kind]), tuple(cums[kind])) for kind in events if times[kind]}


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
    """What happens to a call once placed: answered live (when) or failed (when).

    `answered` and `failed` are sub-distributions (`competing`): answered.cdf(t) is the
    probability that a call placed now is answered live by t. Calls still ringing when the
    model was built count as censored; the share of them about which nothing is known yet
    is booked as answered just after the longest ring seen, the cautious side: a customer
    forecast who never comes costs an agent a few seconds, one not forecast may be abandoned.
    """

    answered: Distribution
    failed: Distribution
    attempts: int
    _memo: dict[tuple[object, ...], Forecast] = field(default_factory=dict, repr=False)

    @property
    def answer_probability(self) -> float:
        return self.answered.total

    @property
    def relative_variance(self) -> float:
        """Squared relative standard error of the answer rate: (1 - p) / (live answers seen)."""
        p = self.answered.total
        live = p * self.attempts
        return (1.0 - p) / live if live >= 1.0 else 1.0

    def new_call(self, offsets: tuple[float, ...]) -> Forecast:
        """P(a call placed now is answered live within each offset)."""
        key = ("new", offsets)
        curve = self._memo.get(key)
        if curve is None:
            curve = Forecast.of(tuple(min(1.0, self.answered.cdf(t)) for t in offsets))
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
        answered = self.answered.cdf
        answered_by_now = answered(elapsed)
        still_ringing = 1.0 - answered_by_now - self.failed.cdf(elapsed)
        if still_ringing <= 1e-12:
            # Rang longer than any call seen: it is about to be given up, not answered.
            return tuple(0.0 for _ in offsets)
        return tuple(
            min(1.0, max(0.0, answered(elapsed + t) - answered_by_now) / still_ringing) for t in offsets
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
        # Past the longest talk seen: as likely to have ended as by then (less than 1 when
        # talks still going on were longer than every finished one).
        return table[index] if index < len(table) else self.talk_time.total

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
        if remaining <= 1e-12 or done >= self.talk_time.total - 1e-12:
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
        self._rings: deque[tuple[bool, float]] = deque(maxlen=window)
        """The last `window` attempts: live or not, and when it was known."""
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

    def observe_attempt(self, outcome: Outcome | str, seconds: float) -> None:
        """One attempt's ringing phase is over: `seconds` from dialing to answer or failure.

        For `answered` and `abandoned` that is the time to answer; for the others the time
        until the failure was known (busy signal, ring timeout, rejection...).
        """
        if outcome not in LEARNABLE:
            raise ValueError(f"{outcome!r} is no outcome the pacing learns from")
        _check_duration(seconds)
        live = outcome in LIVE_ANSWER
        self._live.append(live)
        self._rings.append((live, seconds))
        (self._answer_times if live else self._failure_times).append(seconds)
        self._ring_new += 1
        self.attempts_seen += 1

    def withdraw_answer(self, seconds: float) -> None:
        """Take back a live answer observed while its call went on, once the call turns
        out to be a fault's (cut short by the PBX): such a call teaches nothing."""
        if (True, seconds) not in self._rings:
            return  # already out of the window
        self._rings.remove((True, seconds))
        self._answer_times.remove(seconds)
        self._live.remove(True)
        self._ring_new = max(0, self._ring_new - 1)
        self.attempts_seen -= 1

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

    def certain_answers(self, leads: int) -> int:
        """Live answers that `leads` more attempts bring, but for a 1 % chance, from the
        live-answer share of the attempts seen (`certain_live_answers`)."""
        return certain_live_answers(leads, sum(self._live), len(self._live))

    def wrapup_samples(self) -> tuple[float, ...]:
        """The wrap-up times learned so far, oldest first (the supervisor page shows them)."""
        return tuple(self._wrapup)

    def adopt(self, other: CampaignStats, samples: int = 200) -> None:
        """Take a sibling campaign's latest facts as a prior, before any of this one's own.

        A new campaign on the same queue (or of the same type) meets much the same customers
        and agents: starting from the sibling's last `samples` calls beats starting blind,
        and this campaign's own facts push them out of the window as they come (a few
        hundred calls). Only statistics are taken: the abandon rate the rules measure is
        this campaign's own.
        """
        def merged(mine: deque[T], theirs: deque[T]) -> deque[T]:
            tail = list(theirs)[-samples:] if samples > 0 else []
            return deque([*tail, *mine], maxlen=mine.maxlen)

        self._rings = merged(self._rings, other._rings)
        self._live = deque((live for live, _ in self._rings), maxlen=self.window)
        self._talk = merged(self._talk, other._talk)
        self._wrapup = merged(self._wrapup, other._wrapup)
        self._ring = self._busy = self._estimates = None

    def estimates(
        self, min_samples: int = 30, *, talking: Iterable[float] = (), ringing: Iterable[float] = ()
    ) -> CampaignEstimates | None:
        """Current estimates, or None until `min_samples` attempts and enough answers and
        finished calls are seen to say anything (a cold start).

        `talking` and `ringing` are the elapsed seconds of talks and of calls still going on
        now: censored observations, read when the model is rebuilt. Without them the first
        talks to end (the short ones) would pass for the whole distribution.
        """
        live = sum(self._live)
        enough_talks = max(5, min_samples // 6)
        if len(self._live) < min_samples or live < max(5, min_samples // 6) or len(self._talk) < enough_talks:
            return None
        changed = False
        if self._ring is None or self._ring_new >= _refresh_due(self.refresh_every, self._ring.attempts):
            self._ring = _ring_model(self._rings, _elapsed(ringing))
            self._ring_new = 0
            changed = True
        if self._busy is None or self._busy_new >= _refresh_due(
            self.refresh_every, len(self._busy.talk_time) + len(self._busy.wrapup_time)
        ):
            in_progress = _elapsed(talking)
            talk = (
                Distribution.kaplan_meier(self._talk, in_progress, MIN_AT_RISK)
                if in_progress
                else Distribution.of(self._talk)
            )
            self._busy = BusyModel(talk_time=talk, wrapup_time=Distribution.of(self._wrapup))
            self._busy_new = 0
            changed = True
        if changed or self._estimates is None:
            self._estimates = CampaignEstimates(ring=self._ring, busy=self._busy)
        return self._estimates


CERTAIN_Z = 2.33
"""Standard deviations below the expectation for a count to be taken as certain (~1 %)."""


def certain_live_answers(leads: int, live: int, attempts: int, z: float = CERTAIN_Z) -> int:
    """A low quantile of the live answers `leads` attempts bring, when `live` of `attempts`
    seen were answered live: the share's lower Wilson bound, then the binomial count's
    lower bound. Nothing seen, nothing certain: 0. Each lead is counted as one attempt,
    though a lead not reached is usually dialed again, so the count errs low.
    """
    if leads <= 0 or attempts <= 0:
        return 0
    live = min(max(live, 0), attempts)
    share = live / attempts
    z2 = z * z
    centre = share + z2 / (2 * attempts)
    spread = z * math.sqrt(share * (1.0 - share) / attempts + z2 / (4 * attempts * attempts))
    low_share = max(0.0, (centre - spread) / (1.0 + z2 / attempts))
    expected = leads * low_share
    return max(0, math.floor(expected - z * math.sqrt(expected * (1.0 - low_share))))


def _ring_model(rings: Iterable[tuple[bool, float]], ringing: tuple[float, ...]) -> RingModel:
    answers: list[float] = []
    failures: list[float] = []
    for live, seconds in rings:
        (answers if live else failures).append(seconds)
    attempts = len(answers) + len(failures)
    ends = competing({"answered": answers, "failed": failures}, ringing, MIN_AT_RISK if ringing else 1)
    answered = ends.get("answered", Distribution(()))
    failed = ends.get("failed", Distribution(()))
    unknown = 1.0 - answered.total - failed.total
    if unknown > 1e-9:
        # Calls still ringing past the ends the curve could tell: book them as answering
        # just after.
        last = max([*answered.samples, *failed.samples, 0.0]) + ELAPSED_BUCKET
        answered = Distribution((*answered.samples, last), (*answered.cumulative, answered.total + unknown))
    return RingModel(answered=answered, failed=failed, attempts=attempts)


def _elapsed(times: Iterable[float]) -> tuple[float, ...]:
    # A clock stepping back or a broken record must not poison the curves: such an elapsed
    # time says nothing, so it is left out (NaN fails the comparison too).
    return tuple(t for t in times if t >= 0.0 and math.isfinite(t))


def _refresh_due(refresh_every: int, samples_in_model: int) -> int:
    # Early on a quarter more data changes the picture, later `refresh_every` new facts do;
    # rebuilding on every fact would throw away the remembered curves every tick.
    return max(1, min(refresh_every, samples_in_model // 4))


def _check_duration(seconds: float) -> None:
    if not (seconds >= 0.0 and math.isfinite(seconds)):
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {seconds}")
