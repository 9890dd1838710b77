"""Routing by tier and the reserved-tier pacing (pure)."""

from __future__ import annotations

from dialer.core.originate import routing_variables
from dialer.core.routing import QueueAgents, Routing, TierRoute, route
from dialer.core.tier_pacing import Claims, general_free_for_pacing, reserved_room

RULES = {
    "key": TierRoute(queue="key-accounts", priority=10, fallback_priority=20, fallback_after=1, max_wait=30),
    "gold": TierRoute(queue="gold", priority=5, fallback_queue="support", fallback_after=3),
    "silver": TierRoute(fallback_priority=4),
}


def routed(tier: str, agents: dict[str, QueueAgents], wait: int = 2) -> Routing:
    return route(tier, RULES, general_queue="sales", agent_wait=wait, agents=agents)


def test_a_tier_without_rule_goes_to_the_campaign_queue() -> None:
    assert routed("standard", {}) == Routing("standard", "sales", 0, 2)


def test_key_goes_to_free_dedicated_agents_first_then_the_general_queue() -> None:
    decision = routed("key", {"key-accounts": QueueAgents(logged_in=2, free=1)})
    assert decision == Routing(
        "key", "key-accounts", 10, 1, fallback_queue="sales", fallback_priority=20, fallback_timeout=29,
        reason="dedicated",
    )
    assert routing_variables(decision) == {
        "DIALER_QUEUE": "key-accounts",
        "DIALER_PRIORITY": "10",
        "DIALER_AGENT_WAIT": "1",
        "DIALER_FALLBACK_QUEUE": "sales",
        "DIALER_FALLBACK_PRIORITY": "20",
        "DIALER_FALLBACK_WAIT": "29",
        "DIALER_TIER": "key",
    }


def test_no_dedicated_agent_logged_in_means_the_general_queue_at_once() -> None:
    for agents in ({}, {"key-accounts": QueueAgents(0, 0)}):
        decision = routed("key", agents)
        assert (decision.queue, decision.priority, decision.timeout, decision.fallback_queue) == ("sales", 20, 30, None)
        assert decision.reason == "dedicated_away"


def test_all_dedicated_agents_busy_means_the_general_queue_at_once() -> None:
    decision = routed("key", {"key-accounts": QueueAgents(logged_in=2, free=0)})
    assert (decision.queue, decision.reason) == ("sales", "dedicated_busy")


def test_the_whole_wait_stays_within_the_agent_wait() -> None:
    decision = routed("gold", {"gold": QueueAgents(1, 1)}, wait=2)
    # fallback_after 3 would overrun a 2 s wait: 1 s dedicated, 1 s general.
    assert (decision.timeout, decision.fallback_queue, decision.fallback_timeout) == (1, "support", 1)
    assert decision.timeout + decision.fallback_timeout == 2


def test_a_rule_without_dedicated_queue_only_raises_the_priority() -> None:
    decision = routed("silver", {})
    assert (decision.queue, decision.priority, decision.fallback_queue) == ("sales", 4, None)


def test_reserved_room_counts_free_agents_not_yet_claimed() -> None:
    room = reserved_room(dedicated_free=2, general_free=3, claims=Claims(dedicated=1, general=1), lines_left=10)
    assert (room.dedicated_free, room.general_free, room.total) == (1, 2, 3)


def test_reserved_room_never_exceeds_the_free_lines_nor_goes_negative() -> None:
    assert reserved_room(dedicated_free=2, general_free=3, claims=Claims(), lines_left=3).total == 3
    assert reserved_room(dedicated_free=2, general_free=3, claims=Claims(), lines_left=1).dedicated_free == 1
    assert reserved_room(dedicated_free=1, general_free=0, claims=Claims(dedicated=3), lines_left=5).total == 0
    assert reserved_room(dedicated_free=1, general_free=1, claims=Claims(), lines_left=-2).total == 0


def test_claimed_general_agents_are_not_the_pacings() -> None:
    assert general_free_for_pacing(3, Claims(dedicated=5, general=2)) == 1
    assert general_free_for_pacing(1, Claims(general=2)) == 0


def test_waiting_for_the_dedicated_team_borrows_no_general_agent() -> None:
    room = reserved_room(dedicated_free=1, general_free=3, claims=Claims(), lines_left=10, borrow_general=False)
    assert (room.dedicated_free, room.general_free) == (1, 0)


def test_agents_the_pacing_counts_on_are_not_free_for_reserved_calls() -> None:
    # Three general agents free, two calls of other tiers ringing for them: one left.
    room = reserved_room(dedicated_free=0, general_free=3, claims=Claims(), lines_left=10, paced_in_flight=2)
    assert room.total == 1
    # Predictive over-dialing: more calls in flight than free agents leaves none, dedicated aside.
    room = reserved_room(dedicated_free=1, general_free=3, claims=Claims(), lines_left=10, paced_in_flight=7)
    assert (room.dedicated_free, room.general_free) == (1, 0)
