"""Where a customer calling back goes (pure).

A caller the dialer knows is routed as an outbound call to them would be
(`dialer.core.routing.route`: dedicated team first, the general queue after
the tier's fallback time or at once when the team is away or busy, at the
tier's raised priority). An inbound caller has dialled us and is waiting
already, so the wait before the no-agent message is the campaign's inbound
`max_wait`, not the outbound 2-second grace a tier's `max_wait` stretches.
A caller the dialer does not know goes to the default queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from dialer.core.routing import QueueAgents, Routing, TierRoute, route

UNKNOWN = "unknown"
"""The routing reason of a caller the dialer does not know."""


def inbound_route(
    tier: str | None,
    rules: Mapping[str, TierRoute],
    *,
    campaign_queue: str,
    default_queue: str,
    wait: int,
    agents: Mapping[str, QueueAgents],
) -> Routing:
    """Route one inbound call; `tier` None: the caller is not a known customer."""
    if tier is None:
        return Routing("", default_queue, 0, max(1, wait), reason=UNKNOWN)
    inbound_rules = {name: replace(rule, max_wait=None) for name, rule in rules.items()}
    return route(tier, inbound_rules, general_queue=campaign_queue, agent_wait=max(1, wait), agents=agents)
