"""The do-not-call lists: one global (scope `*`) and one per campaign (scope = its name)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from dialer.store.schema import GLOBAL_DNC, dnc_numbers
from dialer.store.store import Store, _naive_utc


@dataclass(frozen=True)
class DncEntry:
    phone: str
    scope: str
    source: str | None
    added_at: datetime


async def add_numbers(store: Store, phones: Iterable[str], *, scope: str, source: str, now: datetime) -> int:
    """Add numbers to a list; returns how many were new to it."""
    added = 0
    async with store._write() as conn:
        known = set(
            (await conn.execute(select(dnc_numbers.c.phone).where(dnc_numbers.c.scope == scope))).scalars().all()
        )
        for phone in phones:
            if phone in known:
                continue
            await conn.execute(
                insert(dnc_numbers).values(phone=phone, scope=scope, source=source, added_at=_naive_utc(now))
            )
            known.add(phone)
            added += 1
    return added


async def remove_numbers(store: Store, phones: Iterable[str], *, scope: str) -> int:
    async with store._write() as conn:
        result = await conn.execute(
            delete(dnc_numbers).where(dnc_numbers.c.scope == scope, dnc_numbers.c.phone.in_(list(phones)))
        )
    return result.rowcount


async def list_numbers(store: Store, *, scope: str | None = None) -> list[DncEntry]:
    query = select(dnc_numbers.c.phone, dnc_numbers.c.scope, dnc_numbers.c.source, dnc_numbers.c.added_at)
    if scope is not None:
        query = query.where(dnc_numbers.c.scope == scope)
    async with store._read() as conn:
        rows = (await conn.execute(query.order_by(dnc_numbers.c.scope, dnc_numbers.c.phone))).all()
    return [DncEntry(*row) for row in rows]


async def listed(store: Store, campaign: str, phones: Iterable[str]) -> set[str]:
    """Which of `phones` are on the global list or on `campaign`'s list."""
    wanted = list(set(phones))
    if not wanted:
        return set()
    async with store._read() as conn:
        rows = await conn.execute(
            select(dnc_numbers.c.phone).where(
                dnc_numbers.c.phone.in_(wanted), dnc_numbers.c.scope.in_([GLOBAL_DNC, campaign])
            )
        )
        return set(rows.scalars().all())
