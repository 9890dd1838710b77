"""Abandon-rate bookkeeping: live-answered and abandoned calls over a rolling window.

An abandoned call is a live customer who answered and was not bridged to an agent within
the grace time (2 s by the rules); the abandon rate is abandoned / live answered, where
"live answered" counts the abandoned calls too. Regulators define the window: 30 days
(US safe harbour, the default here) or 24 hours (UK). Time is always passed in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from dialer.core.outcomes import ABANDON_CEILING, abandon_rate

DAY = 86_400.0
DEFAULT_WINDOW = 30 * DAY
JUDGED_AT = 100
"""Live answers from which a window's running rate is judged: before that one abandon is
already several per cent of it, and what counts is the rate the window reaches."""


@dataclass(frozen=True, slots=True)
class AbandonState:
    """Counts in the campaign's window, as the pacing sees them."""

    answered: int
    """Live answered calls, abandoned ones included."""
    abandoned: int
    limit: float = ABANDON_CEILING
    reachable: int | None = None
    """Live answers this window will certainly reach (those in it plus a low quantile of
    what the leads still to dial bring); None when the leads left are not known."""

    def __post_init__(self) -> None:
        if self.answered < 0 or self.abandoned < 0 or self.abandoned > self.answered:
            raise ValueError(f"inconsistent counts: {self.abandoned} abandoned of {self.answered}")
        if self.reachable is not None and self.reachable < 0:
            raise ValueError(f"reachable must be >= 0, got {self.reachable}")
        if not 0.0 <= self.limit <= 1.0:
            raise ValueError(f"limit must be a fraction, got {self.limit}")

    @property
    def rate(self) -> float:
        return abandon_rate(self.abandoned, self.answered)

    def budget(self, limit: float | None = None, target: float | None = None) -> float:
        """Abandons that would still keep the rate at or under the limit, if the next one is one.

        Negative or below one means the next abandoned call would break the limit.

        With a `target` and a young window (under `JUDGED_AT` answers) whose `reachable`
        answers are known, the budget is also measured where the rate will be judged: the
        abandons that keep the window at or under the target once it holds
        min(JUDGED_AT, reachable) answers. The target, not the limit, so one abandon's
        worth of slack (limit - target) x JUDGED_AT is left for a burst. A window that
        cannot be sure to reach more answers than it has keeps the plain budget.
        """
        limit = self.limit if limit is None else limit
        plain = limit * (self.answered + 1) - self.abandoned
        if target is None or self.reachable is None or self.answered >= JUDGED_AT:
            return plain
        horizon = min(JUDGED_AT, self.reachable)
        return max(plain, min(target, limit) * horizon - self.abandoned)

    @property
    def answers_needed(self) -> int | None:
        """Clean live answers (bridged in time) before the rate is at or under the limit; 0 when it is."""
        return answers_needed(self.abandoned, self.answered, self.limit)

    def exhausted(self, limit: float | None = None, target: float | None = None) -> bool:
        # Also true at a cold start with nothing known of the leads left: one abandon among
        # few calls is already over 3 %, so the campaign has to earn its budget first.
        return self.budget(limit, target) < 1.0


def answers_needed(abandoned: int, answered: int, limit: float) -> int | None:
    """The smallest n with abandoned / (answered + n) at or under `limit`: the clean live
    answers a window over its limit still needs, 0 for one at or under it.

    None when no number of answers will do (a limit of 0 with an abandon counted).
    """
    if abandoned < 0 or answered < abandoned:
        raise ValueError(f"inconsistent counts: {abandoned} abandoned of {answered}")
    if abandon_rate(abandoned, answered) <= limit:
        return 0
    if limit <= 0.0:
        return None
    # Start from the answers at which the rate is at the limit (a count of answers, not a
    # rate, so not `abandon_rate`). The float's rounding may put it one off either way; the
    # rate itself (the figure the rules and the status show) decides.
    at_limit = math.ceil(abandoned * (1.0 / limit))
    needed = max(1, at_limit - answered)
    while needed > 1 and abandon_rate(abandoned, answered + needed - 1) <= limit:
        needed -= 1
    while abandon_rate(abandoned, answered + needed) > limit:
        needed += 1
    return needed


class AbandonWindow:
    """Rolling counts kept in time buckets, so a 30-day window stays small in memory.

    Calls are counted in the bucket of the time they were recorded; a bucket leaves the
    window once all of it is older than `window` seconds, so the window is exact to
    within one bucket.
    """

    def __init__(self, window: float = DEFAULT_WINDOW, bucket: float = 60.0) -> None:
        if window <= 0 or bucket <= 0:
            raise ValueError("window and bucket must be positive")
        self.window = window
        self.bucket = bucket
        self._buckets: deque[list[int]] = deque()  # [bucket index, answered, abandoned]
        self._answered = 0
        self._abandoned = 0

    def record(self, at: float, *, abandoned: bool) -> int:
        """Count one live-answered call at time `at`: `abandoned`, or bridged to an agent in time.

        Returns the bucket it was counted in, for `withdraw`.
        """
        index = math.floor(at / self.bucket)
        if self._buckets and index < self._buckets[-1][0]:
            # A late record (calls end out of order) joins the newest bucket: it then
            # leaves the window a little later than it should, never earlier.
            index = self._buckets[-1][0]
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        last = self._buckets[-1]
        last[1] += 1
        self._answered += 1
        if abandoned:
            last[2] += 1
            self._abandoned += 1
        return index

    def withdraw(self, bucket: int, *, abandoned: bool) -> None:
        """Take back one call `record` counted in `bucket` (its fate turned out otherwise).

        A bucket already out of the window took the call with it: nothing is left to take.
        """
        for entry in reversed(self._buckets):
            if entry[0] == bucket:
                if entry[1] < 1 or (abandoned and entry[2] < 1):
                    raise ValueError(f"nothing recorded to withdraw in bucket {bucket}")
                entry[1] -= 1
                self._answered -= 1
                if abandoned:
                    entry[2] -= 1
                    self._abandoned -= 1
                return
            if entry[0] < bucket:
                return

    def state(self, now: float, limit: float = ABANDON_CEILING, *, coming: int | None = None) -> AbandonState:
        """The counts at `now`; `coming`: live answers the leads left will certainly bring."""
        oldest_kept = math.floor((now - self.window) / self.bucket)
        while self._buckets and self._buckets[0][0] < oldest_kept:
            _, answered, abandoned = self._buckets.popleft()
            self._answered -= answered
            self._abandoned -= abandoned
        reachable = None if coming is None else self._answered + max(0, coming)
        return AbandonState(answered=self._answered, abandoned=self._abandoned, limit=limit, reachable=reachable)
