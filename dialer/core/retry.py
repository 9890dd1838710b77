"""What happens to a lead after an attempt: call again later, or done and why (pure).

The rules are data (per outcome: a delay and a maximum number of attempts);
the time is an argument. An outcome with no rule closes the lead with that
outcome as its reason (answered, rejected, failed ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

# Lease order: higher first. Abandoned customers were promised nothing but
# were disturbed without being helped, so they are called back before fresh leads.
PRIORITY_NORMAL = 0
PRIORITY_ABANDONED = 10
PRIORITY_CALLBACK = 20


@dataclass(frozen=True)
class RetryRule:
    delay: timedelta
    max_attempts: int


@dataclass(frozen=True)
class Retry:
    at: datetime
    priority: int


@dataclass(frozen=True)
class Close:
    reason: str


def after_attempt(outcome: str, attempts_made: int, now: datetime, rules: Mapping[str, RetryRule]) -> Retry | Close:
    """The lead's next step once an attempt ended with `outcome`.

    `attempts_made` counts every attempt of the lead so far, this one included.
    """
    rule = rules.get(outcome)
    if rule is None:
        return Close(outcome)
    if attempts_made >= rule.max_attempts:
        return Close(f"max_attempts_{outcome}")
    priority = PRIORITY_ABANDONED if outcome == "abandoned" else PRIORITY_NORMAL
    return Retry(at=now + rule.delay, priority=priority)
