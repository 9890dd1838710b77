"""What a campaign's recent calls say about its customers and agents (pure).

From the store's attempt rows: the share of calls a live person answers, the
share that are busy, how long they ring before the answer, how long the
conversations and the wrap-ups last; for the whole period and per hour of the
day (UTC, as stored). These are the simulator's inputs for `dialer tune`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dialer.core.outcomes import LINE_BUSY, LIVE_ANSWER, UNTOLD, Outcome

MIN_ATTEMPTS = 200
"""Finished calls needed: below this the answer rate alone is off by several points."""
MIN_CONVERSATIONS = 40
"""Conversations (bridged to an agent, with an end) needed for the talk-time distribution."""
MAX_SAMPLES = 2000
"""Durations kept per distribution (the newest): the estimator's own window."""


@dataclass
class Profile:
    attempts: int = 0
    live: int = 0
    busy: int = 0
    abandoned: int = 0
    answer_seconds: list[float] = field(default_factory=list)
    busy_seconds: list[float] = field(default_factory=list)
    talk_seconds: list[float] = field(default_factory=list)
    wrapup_seconds: list[float] = field(default_factory=list)

    @property
    def live_share(self) -> float:
        return self.live / self.attempts if self.attempts else 0.0

    @property
    def busy_share(self) -> float:
        return self.busy / self.attempts if self.attempts else 0.0


@dataclass
class History:
    since: datetime | None
    until: datetime | None
    day: Profile
    by_hour: dict[int, Profile]
    agents: int
    """Distinct agents who took a call in the period."""


class HistoryTooShort(ValueError):
    """Too little history to simulate the campaign; the message says how much is needed."""


def _seconds(end: Any, start: Any) -> float | None:
    if not isinstance(end, datetime) or not isinstance(start, datetime):
        return None
    seconds = (end - start).total_seconds()
    return seconds if 0 <= seconds <= 24 * 3600 else None


def read_history(rows: Iterable[Mapping[str, Any]], *, now: datetime, days: float) -> History:
    """The profile of the attempts dialed in the `days` before `now` (naive UTC, as stored)."""
    since = now - timedelta(days=days)
    day = Profile()
    by_hour: dict[int, Profile] = defaultdict(Profile)
    agents: set[str] = set()
    first = last = None
    for row in rows:
        dialed = row.get("dialed_at")
        outcome = row.get("outcome")
        if not isinstance(dialed, datetime) or dialed < since or dialed > now or not outcome:
            continue
        # Not the customer's doing: teaches nothing about them.
        if outcome in UNTOLD or row.get("cut_short"):
            continue
        first = dialed if first is None or dialed < first else first
        last = dialed if last is None or dialed > last else last
        for profile in (day, by_hour[dialed.hour]):
            profile.attempts += 1
            if outcome in LIVE_ANSWER:
                profile.live += 1
                profile.abandoned += outcome == Outcome.abandoned
                answer = _seconds(row.get("answered_at"), dialed)
                if answer is not None:
                    profile.answer_seconds.append(answer)
            elif outcome in LINE_BUSY:
                profile.busy += 1
                ended = _seconds(row.get("ended_at"), dialed)
                if ended is not None:
                    profile.busy_seconds.append(ended)
            if outcome == Outcome.answered and row.get("agent_id"):
                talk = _seconds(row.get("ended_at"), row.get("bridged_at"))
                if talk is not None:
                    profile.talk_seconds.append(talk)
                wrapup = _seconds(row.get("disposition_at"), row.get("ended_at"))
                if wrapup is not None and wrapup <= 1800:
                    profile.wrapup_seconds.append(wrapup)
        if row.get("agent_id"):
            agents.add(str(row["agent_id"]))
    for profile in (day, *by_hour.values()):
        for samples in (profile.answer_seconds, profile.busy_seconds, profile.talk_seconds, profile.wrapup_seconds):
            del samples[:-MAX_SAMPLES]
    return History(first, last, day, dict(sorted(by_hour.items())), len(agents))


def check_enough(history: History, *, days: float) -> None:
    """Raise HistoryTooShort unless the history can carry a simulation."""
    day = history.day
    missing = []
    if day.attempts < MIN_ATTEMPTS:
        missing.append(f"{MIN_ATTEMPTS} finished calls (has {day.attempts})")
    if len(day.talk_seconds) < MIN_CONVERSATIONS:
        missing.append(f"{MIN_CONVERSATIONS} conversations with an agent (has {len(day.talk_seconds)})")
    if not day.answer_seconds:
        missing.append("a live answer")
    if missing:
        raise HistoryTooShort(
            f"too little history in the last {days:g} days to simulate: needs at least " + " and ".join(missing)
            + "; let the campaign run longer, or widen the period with --days"
        )
