"""Who may dial a campaign when several daemons share one database: the pure rules of its lease.

A campaign is dialed by one daemon at a time, its owner, named in the
campaign's lease row (`dialer.store.campaign_owners`). The owner renews the
lease every `heartbeat` seconds; a lease not renewed for `takeover_after`
seconds has expired and any daemon may take it. The owner stops dialing one
heartbeat before its lease could expire, so a daemon that is stalled rather than
dead (its database unreachable) has stopped dialing before another may start.

Times are naive UTC datetimes as the store keeps them; each daemon compares
them with its own clock, so the clocks of the daemons' hosts must agree to well
within a heartbeat (NTP does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LeaseTerms:
    takeover_after: float
    """Seconds a lease lasts without renewal: the longest a dead owner's campaign waits for a new one."""
    heartbeat: float
    """Seconds between renewals."""

    def __post_init__(self) -> None:
        if not (self.heartbeat > 0 and self.takeover_after >= 3 * self.heartbeat):
            raise ValueError("takeover_after must be at least three heartbeats")


@dataclass(frozen=True)
class Holder:
    """A campaign's lease as its row says."""

    owner: str
    heartbeat_at: datetime
    expires_at: datetime


def expired(holder: Holder, now: datetime) -> bool:
    return now >= holder.expires_at


def may_claim(holder: Holder | None, me: str, now: datetime) -> bool:
    """Whether `me` may write itself into the lease: nobody holds it, `me` does, or it expired."""
    return holder is None or holder.owner == me or expired(holder, now)


def renewed(me: str, now: datetime, terms: LeaseTerms) -> Holder:
    return Holder(me, now, now + timedelta(seconds=terms.takeover_after))


def taken_from(holder: Holder | None, me: str) -> str | None:
    """The daemon whose campaign `me` takes over by claiming it: its open calls are to be adopted."""
    return None if holder is None or holder.owner == me else holder.owner


def may_dial(held_until: datetime | None, now: datetime, terms: LeaseTerms) -> bool:
    """Whether the owner whose last renewal runs to `held_until` may still dial at `now`.

    A heartbeat short of the lease's end: the owner has stopped before a
    daemon could take over, even if its renewals fail from now on.
    """
    return held_until is not None and now < held_until - timedelta(seconds=terms.heartbeat)
