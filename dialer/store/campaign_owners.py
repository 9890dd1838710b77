"""Campaign leases on the shared database: claimed, renewed and taken over by compare-and-set.

One statement decides each claim: an INSERT that skips an existing row, or an
UPDATE guarded by the owner and expiry just read. Two daemons claiming at
once both read the same row; the database lets exactly one write land (the
other matches no row), on SQLite and PostgreSQL alike, with no lock held
between ticks and no election of our own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select, update

from dialer.core.ownership import Holder, LeaseTerms, may_claim, renewed, taken_from
from dialer.store import dialect
from dialer.store.schema import campaign_owners
from dialer.store.store import Store, _naive_utc


@dataclass(frozen=True)
class Claim:
    held: bool
    """This daemon holds the lease now, until `holder.expires_at`."""
    holder: Holder | None
    """The lease as it stands after the claim (another daemon's when `held` is false)."""
    taken_from: str | None = None
    """The daemon this claim took the campaign over from (its open calls are to be adopted)."""


def _holder(row: Row[Any] | None) -> Holder | None:
    return None if row is None else Holder(row.owner, row.heartbeat_at, row.expires_at)


async def holder(store: Store, campaign_id: int) -> Holder | None:
    async with store._read() as conn:
        row = (await conn.execute(select(campaign_owners).where(campaign_owners.c.campaign_id == campaign_id))).first()
    return _holder(row)


async def claim(store: Store, campaign_id: int, me: str, now: datetime, terms: LeaseTerms) -> Claim:
    """Take or renew the campaign's lease for `me` if the rules allow it (`dialer.core.ownership`)."""
    now = _naive_utc(now)
    async with store._write() as conn:
        row = (await conn.execute(select(campaign_owners).where(campaign_owners.c.campaign_id == campaign_id))).first()
        before = _holder(row)
        if not may_claim(before, me, now):
            return Claim(False, before)
        after = renewed(me, now, terms)
        values = {"owner": after.owner, "heartbeat_at": after.heartbeat_at, "expires_at": after.expires_at}
        if before is None:
            stmt = dialect.insert_ignoring_duplicates(conn, campaign_owners).values(campaign_id=campaign_id, **values)
        else:
            stmt = (
                update(campaign_owners)
                .where(
                    campaign_owners.c.campaign_id == campaign_id,
                    campaign_owners.c.owner == before.owner,
                    campaign_owners.c.expires_at == before.expires_at,
                )
                .values(**values)
            )
        if (await conn.execute(stmt)).rowcount != 1:
            # Another daemon's write landed between our read and this one: it holds the lease.
            won = (await conn.execute(select(campaign_owners).where(campaign_owners.c.campaign_id == campaign_id))).first()
            return Claim(False, _holder(won))
    return Claim(True, after, taken_from(before, me))


async def release(store: Store, campaign_id: int, me: str) -> None:
    """Give the lease up at a clean stop, so another daemon need not wait for it to expire."""
    async with store._write() as conn:
        await conn.execute(
            delete(campaign_owners).where(campaign_owners.c.campaign_id == campaign_id, campaign_owners.c.owner == me)
        )
