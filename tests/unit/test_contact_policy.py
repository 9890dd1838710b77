"""The contact policy per tier (pure) and the history it reads across campaigns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from dialer.core.contact_policy import (
    ContactRule,
    PastAttempt,
    next_allowed,
    revisit_at,
)
from dialer.leads.csv_import import LeadRow
from dialer.store import tier_store
from dialer.store.schema import call_attempts, leads
from dialer.store.store import Store

NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def test_no_history_no_wait() -> None:
    assert next_allowed(ContactRule(min_days_between=30, max_attempts=3), [], NOW) is None


def test_minimum_days_between_contacts() -> None:
    rule = ContactRule(min_days_between=30)
    contacted = [PastAttempt(NOW - days(10), answered=True)]
    assert next_allowed(rule, contacted, NOW) == NOW + days(20)
    assert next_allowed(rule, [PastAttempt(NOW - days(30), answered=True)], NOW) is None
    # The latest contact counts, not the first.
    both = [PastAttempt(NOW - days(40), True), PastAttempt(NOW - days(2), True)]
    assert next_allowed(rule, both, NOW) == NOW + days(28)


def test_unanswered_attempts_are_not_contacts() -> None:
    rule = ContactRule(min_days_between=30)
    assert next_allowed(rule, [PastAttempt(NOW - days(1), answered=False)], NOW) is None


def test_maximum_attempts_per_period() -> None:
    rule = ContactRule(max_attempts=3, period_days=7)
    history = [PastAttempt(NOW - days(d), False) for d in (6, 3, 1)]
    # The oldest of the three leaves the 7-day period one day from now.
    assert next_allowed(rule, history, NOW) == NOW + days(1)
    assert next_allowed(rule, history[1:], NOW) is None
    old = [PastAttempt(NOW - days(d), False) for d in (20, 15, 10)]
    assert next_allowed(rule, old, NOW) is None


def test_the_later_of_both_limits_wins() -> None:
    rule = ContactRule(min_days_between=14, max_attempts=2, period_days=30)
    history = [PastAttempt(NOW - days(25), False), PastAttempt(NOW - days(3), True)]
    # Attempts: the 25-day-old one leaves the period in 5 days; contact: 11 days to go.
    assert next_allowed(rule, history, NOW) == NOW + days(11)


def test_revisit_cadence() -> None:
    assert revisit_at(30, NOW) == NOW + days(30)
    assert revisit_at(None, NOW) is None


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_history_spans_campaigns_and_skips_the_attempt_being_placed(store: Store) -> None:
    first = await store.sync_campaign("renewals", "telemarketing")
    second = await store.sync_campaign("revisit", "callback")
    await store.import_leads(first, [LeadRow(line=2, phone="+12125550123")])
    await store.import_leads(second, [LeadRow(line=2, phone="+12125550123")])
    (earlier,) = await store.lease_due_leads(first, 1, NOW - days(3))
    await store.finish_attempt(earlier.attempt_id, outcome="answered", lead_state="done",
                               answered_at=NOW - days(3), ended_at=NOW - days(3))
    (current,) = await store.lease_due_leads(second, 1, NOW)
    info = await tier_store.customer_info(store, [current.lead_id])
    customer = info[current.lead_id].customer_id
    history = await tier_store.contact_history(store, [customer], exclude_attempts=[current.attempt_id])
    assert history == {customer: [PastAttempt((NOW - days(3)), True)]}
    assert next_allowed(ContactRule(min_days_between=7), history[customer], NOW) == NOW + days(4)


async def test_a_revisit_reopens_an_answered_lead_only(store: Store) -> None:
    campaign = await store.sync_campaign("revisit", "callback")
    await store.import_leads(campaign, [LeadRow(line=2, phone="+12125550123"), LeadRow(line=3, phone="+12125550124")])
    answered, refused = await store.lease_due_leads(campaign, 2, NOW)
    await store.finish_attempt(answered.attempt_id, outcome="answered", lead_state="done")
    await store.finish_attempt(refused.attempt_id, outcome="rejected", lead_state="done")
    assert await tier_store.schedule_revisit(store, answered.attempt_id, NOW + days(30))
    assert not await tier_store.schedule_revisit(store, refused.attempt_id, NOW + days(30))
    async with store.engine.connect() as conn:
        rows = {r.phone: r for r in (await conn.execute(select(leads))).all()}
    assert rows["+12125550123"].state == "pending"
    assert rows["+12125550123"].next_attempt_at == (NOW + days(30)).replace(tzinfo=None)
    assert rows["+12125550123"].attempts == 0
    assert rows["+12125550124"].state == "done"
    # Not due before its date; due after.
    assert await store.lease_due_leads(campaign, 5, NOW + days(29)) == []
    assert len(await store.lease_due_leads(campaign, 5, NOW + days(30))) == 1


async def test_refused_originates_are_not_attempts(store: Store) -> None:
    campaign = await store.sync_campaign("c", "telemarketing")
    await store.import_leads(campaign, [LeadRow(line=2, phone="+12125550123")])
    (lease,) = await store.lease_due_leads(campaign, 1, NOW)
    async with store.engine.begin() as conn:
        await conn.execute(update(call_attempts).values(outcome="not_sent", state="ended"))
    info = await tier_store.customer_info(store, [lease.lead_id])
    customer = info[lease.lead_id].customer_id
    assert await tier_store.contact_history(store, [customer]) == {customer: []}
