"""How often one customer may be called, across all campaigns (pure).

A contact is a call that served the customer (outcome `answered`: an agent or
an IVR flow took it); an abandoned call is not one, and is retried as the
campaign's rules say. `min_days_between` keeps contacts apart; `max_attempts`
caps dial attempts (answered or not) in any trailing `period_days`. The answer is the earliest moment the customer may be dialed
again, so the scheduler can defer the lead rather than drop it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ContactRule:
    min_days_between: float = 0.0
    max_attempts: int | None = None
    period_days: float = 30.0


@dataclass(frozen=True)
class PastAttempt:
    dialed_at: datetime
    answered: bool


def next_allowed(rule: ContactRule, history: Sequence[PastAttempt], now: datetime) -> datetime | None:
    """None when the customer may be dialed at `now`; else the earliest moment they may be."""
    waits: list[datetime] = []
    contacts = [a.dialed_at for a in history if a.answered]
    if rule.min_days_between > 0 and contacts:
        free_from = max(contacts) + timedelta(days=rule.min_days_between)
        if free_from > now:
            waits.append(free_from)
    if rule.max_attempts is not None:
        period = timedelta(days=rule.period_days)
        recent = sorted(a.dialed_at for a in history if a.dialed_at > now - period)
        if len(recent) >= rule.max_attempts:
            # Once the oldest attempts that fill the cap leave the period, one more fits.
            waits.append(recent[len(recent) - rule.max_attempts] + period)
    return max(waits) if waits else None


def revisit_at(days: float | None, contacted_at: datetime) -> datetime | None:
    """When a revisit programme calls a customer again after a contact, if it does."""
    if days is None:
        return None
    return contacted_at + timedelta(days=days)
