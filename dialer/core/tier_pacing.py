"""Tier-aware pacing: how many calls of the reserved tiers may be placed now (pure).

A reserved tier (by default the top one) is never dialed predictively: each
call placed holds a claim on one free agent, dedicated or general, from the
Originate until an agent is bridged or the call ends. New calls of these
tiers are placed only against agents free and not yet claimed; the claims on
general agents are taken out of the pool the predictive pacing of the lower
tiers sees.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claims:
    dedicated: int = 0
    general: int = 0


@dataclass(frozen=True)
class ReservedRoom:
    dedicated_free: int
    general_free: int
    """Both net of the claims already held."""
    borrows_general: bool = True
    """False while reserved calls wait for the dedicated team."""
    due: bool = True
    """False when no lead of a reserved tier is due: nothing to lease for them."""

    @property
    def to_lease(self) -> int:
        return self.total if self.due else 0

    @property
    def total(self) -> int:
        return self.dedicated_free + self.general_free


def reserved_room(
    *,
    dedicated_free: int,
    general_free: int,
    claims: Claims,
    lines_left: int,
    paced_in_flight: int = 0,
    borrow_general: bool = True,
) -> ReservedRoom:
    """Agents still free for new reserved-tier calls, within the campaign's free lines.

    `paced_in_flight` are the other tiers' calls placed and not yet bridged: the
    pacing placed them counting on the free general agents, so those agents are
    not free for a reserved call. Without `borrow_general` (the dedicated team is
    in and the campaign waits for it) only dedicated agents count.
    """
    dedicated = max(0, dedicated_free - claims.dedicated)
    general = max(0, general_free - claims.general - paced_in_flight) if borrow_general else 0
    lines = max(0, lines_left)
    dedicated = min(dedicated, lines)
    general = min(general, lines - dedicated)
    return ReservedRoom(dedicated, general, borrow_general)


def general_free_for_pacing(general_free: int, claims: Claims) -> int:
    """Free general agents the predictive pacing may count on: claimed ones excluded."""
    return max(0, general_free - claims.general)
