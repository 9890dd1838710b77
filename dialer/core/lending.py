"""Lending a dedicated team to the general queue while no key customer needs it (pure).

Dedicated agents who take only reserved calls sit idle most of the day: key
customers are few. A dedicated agent may be *lent*: made a member of the general
queue too, so general customers reach them. What keeps a key customer from
ever waiting for an agent who is busy with a general call is the order of
things:

- a reserved call is placed only against a *claimable* dedicated agent: free,
  and not a member of the general queue (a lent agent could be taken by a
  general customer between the Originate and the answer);
- the team keeps back, out of the general queue, as many free agents as there
  are reserved calls in flight plus reserved leads due now or within the
  look-ahead; a lent agent is recalled (its general membership removed) as
  soon as that count is not met, free agents first since they are claimable
  at once;
- the rest, and the whole team when no key customer is ringing, waiting or
  due, is lent.

A recalled agent still on a general call becomes claimable when the call and
its wrap-up end; until then the key lead waits in the hopper (it is not dialed),
never on the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TeamMember:
    id: str
    lent: bool
    """A member of the general queue now."""
    free: bool
    """Idle: logged in to the dedicated queue, not ringing, not on a call, not paused."""
    paused: bool = False
    """Paused by the agent or a supervisor: never lent (a new membership would start unpaused)."""


@dataclass(frozen=True)
class LendMoves:
    lend: tuple[str, ...] = ()
    """Agents to add to the general queue."""
    recall: tuple[str, ...] = ()
    """Agents to take out of the general queue."""

    def __bool__(self) -> bool:
        return bool(self.lend or self.recall)


def agents_needed(*, reserved_in_flight: int, due_now: int, due_soon: int) -> int:
    """Free, unlent dedicated agents the key customers need now or shortly.

    `reserved_in_flight` are reserved calls placed and not yet bridged that count
    on a dedicated agent; `due_now` and `due_soon` are reserved leads due now and
    within the look-ahead (each lead one agent).
    """
    return max(0, reserved_in_flight) + max(0, due_now) + max(0, due_soon)


def lend_moves(team: Sequence[TeamMember], *, needed: int, enabled: bool = True) -> LendMoves:
    """Which dedicated agents to lend to, or recall from, the general queue now.

    With lending disabled every lent agent is recalled (a campaign file edited
    back to `lend_to_general: false` takes effect on the next tick).
    """
    if not enabled:
        return LendMoves(recall=tuple(m.id for m in team if m.lent))
    kept_free = [m for m in team if not m.lent and m.free]
    if needed <= 0:
        return LendMoves(lend=tuple(m.id for m in team if not m.lent and not m.paused))
    short = needed - len(kept_free)
    if short > 0:
        lent = [m for m in team if m.lent]
        # Free ones first: claimable as soon as Asterisk has removed them.
        lent.sort(key=lambda m: not m.free)
        return LendMoves(recall=tuple(m.id for m in lent[:short]))
    # Only the free agents beyond the need are lent; one on a key call stays
    # out of the general queue, it may be the next one needed.
    spare = kept_free[needed:]
    return LendMoves(lend=tuple(m.id for m in spare))


def claimable(team: Sequence[TeamMember]) -> int:
    """Dedicated agents a new reserved call may count on: free and not lent."""
    return sum(1 for m in team if m.free and not m.lent)
