"""Store reads and writes for customer tiers: the value rule after an import,
CRM answers, contact history across campaigns, revisits and screen-pop data.

Functions over a `Store` (like `dialer.store.dnc`); the decisions are the
pure core's (`dialer.core.tiers`, `dialer.core.contact_policy`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from dialer.core.contact_policy import PastAttempt
from dialer.core.lead_lifecycle import IllegalTransition, LeadState, RevisitAfterAnswer
from dialer.core.outcomes import NOT_PLACED
from dialer.core.tiers import TierLadder, value_tiers
from dialer.store import lead_transitions
from dialer.store.lease_tiers import LeaseTiers
from dialer.store.schema import call_attempts, callbacks, campaigns, customers, leads
from dialer.store.store import Store, _naive_utc

SOURCE_COLUMN = "column"
SOURCE_VALUE = "value"
SOURCE_CRM = "crm"


@dataclass(frozen=True)
class CustomerInfo:
    lead_id: int
    customer_id: int
    external_id: str | None
    name: str | None
    tier: str | None
    tier_source: str | None
    value: float | None


async def apply_import_tiers(
    store: Store,
    campaign_id: int,
    *,
    sources: Sequence[str],
    cutoffs: Sequence[tuple[str, float]],
    rest: str,
    ladder: TierLadder,
    column_phones: Collection[str],
) -> Counter[str]:
    """After an import: mark tiers given by the file's column, then recompute the value rule
    over all of the campaign's customers with a value. Returns customers per tier.

    A customer whose tier came from the column keeps it when `column` comes
    before `value` in `sources`; otherwise the value rule's tier wins.
    """
    async with store._write() as conn:
        if column_phones:
            await conn.execute(
                update(customers)
                .where(customers.c.phone.in_(list(column_phones)), customers.c.tier.is_not(None))
                .values(tier_source=SOURCE_COLUMN)
            )
        rows = (
            await conn.execute(
                select(customers.c.id, customers.c.tier, customers.c.tier_source, customers.c.value)
                .join(leads, leads.c.customer_id == customers.c.id)
                .where(leads.c.campaign_id == campaign_id)
            )
        ).all()
        if SOURCE_VALUE in sources:
            column_first = SOURCE_COLUMN in sources and sources.index(SOURCE_COLUMN) < sources.index(SOURCE_VALUE)
            computed = value_tiers({row.id: row.value for row in rows}, cutoffs, rest)
            changed = []
            for row in rows:
                tier = computed.get(row.id)
                if tier is None or (column_first and row.tier_source == SOURCE_COLUMN and ladder.known(row.tier)):
                    continue
                if tier != row.tier or row.tier_source != SOURCE_VALUE:
                    changed.append({"b_id": row.id, "b_tier": tier})
            if changed:
                # One statement for all (executemany): a 100 000-lead import must not hold
                # SQLite's write lock for one round trip per customer.
                await conn.execute(
                    update(customers)
                    .where(customers.c.id == bindparam("b_id"))
                    .values(tier=bindparam("b_tier"), tier_source=SOURCE_VALUE),
                    changed,
                )
        tiers = (
            await conn.execute(
                select(customers.c.tier)
                .join(leads, leads.c.customer_id == customers.c.id)
                .where(leads.c.campaign_id == campaign_id)
            )
        ).scalars().all()
    return Counter(ladder.effective(t) for t in tiers)


async def customer_info(store: Store, lead_ids: Collection[int]) -> dict[int, CustomerInfo]:
    if not lead_ids:
        return {}
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(
                    leads.c.id,
                    customers.c.id.label("customer_id"),
                    customers.c.external_id,
                    customers.c.name,
                    customers.c.tier,
                    customers.c.tier_source,
                    customers.c.value,
                )
                .join(customers, customers.c.id == leads.c.customer_id)
                .where(leads.c.id.in_(list(lead_ids)))
            )
        ).all()
    return {row.id: CustomerInfo(*row) for row in rows}


async def contact_history(
    store: Store, customer_ids: Collection[int], *, exclude_attempts: Collection[str] = ()
) -> dict[int, list[PastAttempt]]:
    """Every attempt to each customer, in any campaign (the ones given excluded)."""
    history: dict[int, list[PastAttempt]] = {c: [] for c in customer_ids}
    if not customer_ids:
        return history
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(
                    leads.c.customer_id, call_attempts.c.dialed_at, call_attempts.c.outcome, call_attempts.c.cut_short
                )
                .join(leads, leads.c.id == call_attempts.c.lead_id)
                .where(
                    leads.c.customer_id.in_(list(customer_ids)),
                    call_attempts.c.id.not_in(list(exclude_attempts)),
                    # An Originate Asterisk refused reached nobody.
                    (call_attempts.c.outcome.is_(None))
                    | (call_attempts.c.outcome.not_in(sorted(o.value for o in NOT_PLACED))),
                )
            )
        ).all()
    for row in rows:
        # A contact is a call that served the customer (an agent or an IVR flow): an abandoned
        # call disturbed them without serving them, and is retried before fresh leads. Nor is a
        # conversation a PBX fault cut short: its lead is due again to finish it.
        served = row.outcome == "answered" and not row.cut_short
        history[row.customer_id].append(PastAttempt(row.dialed_at.replace(tzinfo=UTC), served))
    return history


async def set_crm_tier(store: Store, customer_id: int, tier: str, now: datetime) -> None:
    async with store._write() as conn:
        await conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(tier=tier, tier_source=SOURCE_CRM, tier_checked_at=_naive_utc(now))
        )


async def schedule_revisit(store: Store, attempt_id: str, at: datetime) -> bool:
    """Make the lead of an attempt that reached the customer due again at `at`.

    Only a lead closed as `answered` is reopened: one a disposition closed for
    another reason (do-not-call, a sale that ends the programme) stays closed.
    """
    async with store._write() as conn:
        lead_id = (
            await conn.execute(select(call_attempts.c.lead_id).where(call_attempts.c.id == attempt_id))
        ).scalar()
        if lead_id is None:
            return False
        try:
            await lead_transitions.apply(conn, lead_id, RevisitAfterAnswer(at), at)
        except IllegalTransition:
            return False
        return True


async def screen_pop_rows(store: Store, lead_id: int, *, contacts: int = 5) -> dict[str, Any] | None:
    """The customer behind a lead, their last attempts in any campaign and open callbacks."""
    async with store._read() as conn:
        lead = (
            await conn.execute(
                select(
                    leads.c.id.label("lead_id"),
                    leads.c.phone,
                    leads.c.data,
                    customers.c.id.label("customer_id"),
                    customers.c.external_id,
                    customers.c.name,
                    customers.c.tier,
                    customers.c.tier_source,
                    customers.c.value,
                )
                .join(customers, customers.c.id == leads.c.customer_id)
                .where(leads.c.id == lead_id)
            )
        ).mappings().first()
        if lead is None:
            return None
        last = (
            await conn.execute(
                select(
                    call_attempts.c.id.label("attempt"),
                    campaigns.c.name.label("campaign"),
                    call_attempts.c.dialed_at,
                    call_attempts.c.outcome,
                    call_attempts.c.disposition,
                    call_attempts.c.agent_id,
                )
                .join(leads, leads.c.id == call_attempts.c.lead_id)
                .join(campaigns, campaigns.c.id == call_attempts.c.campaign_id)
                .where(leads.c.customer_id == lead["customer_id"], call_attempts.c.outcome.is_not(None))
                .order_by(call_attempts.c.dialed_at.desc())
                .limit(contacts)
            )
        ).mappings().all()
        open_callbacks = (
            await conn.execute(
                select(
                    callbacks.c.id,
                    campaigns.c.name.label("campaign"),
                    callbacks.c.due_at,
                    callbacks.c.agent_id,
                    callbacks.c.state,
                )
                .join(leads, leads.c.id == callbacks.c.lead_id)
                .join(campaigns, campaigns.c.id == callbacks.c.campaign_id)
                .where(leads.c.customer_id == lead["customer_id"], callbacks.c.state.in_(("scheduled", "dialing")))
                .order_by(callbacks.c.due_at)
            )
        ).mappings().all()
    return {**dict(lead), "last_contacts": [dict(r) for r in last], "open_callbacks": [dict(r) for r in open_callbacks]}


async def due_leads(store: Store, campaign_id: int, now: datetime, tiers: LeaseTiers) -> bool:
    """Whether any lead of these tiers is due now (as `Store.lease_due_leads` would see it)."""
    return await count_due(store, campaign_id, now, tiers, at_most=1) > 0


async def count_due(store: Store, campaign_id: int, until: datetime, tiers: LeaseTiers, *, at_most: int) -> int:
    """Leads of these tiers due by `until`, counted up to `at_most` (a dedicated team's size)."""
    if at_most <= 0:
        return 0
    moment = _naive_utc(until)
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(leads.c.id)
                .join(customers, customers.c.id == leads.c.customer_id)
                .where(
                    leads.c.campaign_id == campaign_id,
                    leads.c.state == LeadState.pending.value,
                    (leads.c.next_attempt_at.is_(None)) | (leads.c.next_attempt_at <= moment),
                    *tiers.where(),
                )
                .limit(at_most)
            )
        ).all()
    return len(rows)


async def tag_attempts(store: Store, tags: Mapping[str, tuple[str, Any]]) -> None:
    """Record each attempt's tier and routing (a `dialer.core.routing.Routing`), in one transaction."""
    if not tags:
        return
    async with store._write() as conn:
        for attempt_id, (tier, routing) in tags.items():
            await conn.execute(
                update(call_attempts)
                .where(call_attempts.c.id == attempt_id)
                .values(tier=tier, routed_queue=routing.queue, routing=routing.reason)
            )
