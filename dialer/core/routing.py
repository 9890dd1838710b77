"""Which queue, priority and fallback an answered customer gets, by tier (pure).

A tier with dedicated agents goes to their queue first and, after
`fallback_after` seconds with nobody answering, to the general queue with a
raised priority. When no dedicated agent is logged in, or none is free, the
call goes to the general queue at once: a key customer is never left waiting
for agents who are away. The dialplan performs the decision (two `Queue()`
calls, `asterisk-conf/README.md`); the daemon passes it as Originate variables (`dialer.core.originate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class TierRoute:
    queue: str | None = None
    """The dedicated agents' queue; None: the general queue only."""
    priority: int = 0
    fallback_queue: str | None = None
    """None: the campaign's queue."""
    fallback_priority: int = 10
    fallback_after: int = 1
    max_wait: int | None = None
    """Seconds in all before the abandon message; None: the campaign's agent wait."""


@dataclass(frozen=True)
class QueueAgents:
    logged_in: int
    free: int
    """Free and not promised to a call already placed."""


@dataclass(frozen=True)
class Routing:
    tier: str
    queue: str
    priority: int
    timeout: int
    """Seconds in `queue` (the Queue() timeout)."""
    fallback_queue: str | None = None
    fallback_priority: int = 0
    fallback_timeout: int = 0
    """Seconds in the fallback queue."""
    reason: str = "general"
    """dedicated, dedicated_away (none logged in), dedicated_busy (none free), general."""

    @property
    def dedicated(self) -> bool:
        return self.reason == "dedicated"


def route(
    tier: str,
    rules: Mapping[str, TierRoute],
    *,
    general_queue: str,
    agent_wait: int,
    agents: Mapping[str, QueueAgents],
) -> Routing:
    """Route one call of `tier`; `agents` gives each queue's agents now."""
    rule = rules.get(tier)
    if rule is None:
        return Routing(tier, general_queue, 0, agent_wait)
    fallback = rule.fallback_queue or general_queue
    total = max(1, rule.max_wait if rule.max_wait is not None else agent_wait)
    if rule.queue is None or rule.queue == fallback:
        return Routing(tier, fallback, rule.fallback_priority, total)
    dedicated = agents.get(rule.queue, QueueAgents(0, 0))
    if dedicated.logged_in == 0 or dedicated.free == 0:
        reason = "dedicated_away" if dedicated.logged_in == 0 else "dedicated_busy"
        return Routing(tier, fallback, rule.fallback_priority, total, reason=reason)
    first = min(rule.fallback_after, total - 1) if total > 1 else 1
    return Routing(
        tier,
        rule.queue,
        rule.priority,
        first,
        fallback_queue=fallback,
        fallback_priority=rule.fallback_priority,
        fallback_timeout=max(1, total - first),
        reason="dedicated",
    )
