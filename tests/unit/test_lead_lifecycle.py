"""A lead's life cycle: the pure transition function, and the one store function that applies it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dialer.core.attempt import Attempt, State
from dialer.core.dispositions import DispositionAction, DispositionRefused, decide
from dialer.core.lead_lifecycle import (
    LEAD_COLUMNS,
    NEW_LEAD,
    REOPENING,
    AttemptEnded,
    AttemptEndedAsTold,
    CallbackBooked,
    CalledBack,
    Disposed,
    IllegalTransition,
    Lead,
    LeadEvent,
    Leased,
    LeadState,
    NotSent,
    Released,
    RevisitAfterAnswer,
    Revisited,
    transition,
)
from dialer.core.reconcile import Adopt, Vanished, catch_up, closing
from dialer.core.retry import PRIORITY_ABANDONED, PRIORITY_CALLBACK, Close, Retry
from dialer.leads.csv_import import LeadRow
from dialer.store import callbacks as callback_store
from dialer.store import inbound_calls, lead_transitions
from dialer.store.lead_outcomes import finish_with_rules, release_unsent
from dialer.store.schema import callbacks, inbound_calls as inbound_table, leads
from dialer.store.store import Store

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
ATTEMPTS = ("a1", "a2", "a3")
HOLDER = "holder"
"""Stands for the attempt that holds the lease when the event comes (a fresh id when none does)."""

# -- random event sequences -----------------------------------------------------

moments = st.integers(0, 72 * 60).map(lambda minutes: NOW + timedelta(minutes=minutes))
attempt_ids = st.sampled_from((HOLDER, HOLDER, *ATTEMPTS))
outcomes = st.sampled_from(["busy", "no_answer", "answered", "abandoned", "interrupted", "failed"])
steps = st.one_of(
    st.builds(Retry, at=moments, priority=st.sampled_from([0, PRIORITY_ABANDONED])),
    st.builds(Close, reason=st.sampled_from(["answered", "max_attempts_busy", "failed"])),
)
leases = st.builds(Leased, attempt_ids)
ends = st.one_of(
    st.builds(AttemptEnded, attempt_ids, outcomes, steps, st.booleans()),
    st.builds(AttemptEnded, attempt_ids, st.just("answered"), st.just(Close("answered"))),
)
# Leases and attempt ends are drawn more often: most events need a lead that is leased.
kinds = [leases] * 4 + [ends] * 4 + [
    st.builds(AttemptEndedAsTold, attempt_ids, outcomes, st.booleans(), st.none() | moments),
    st.builds(NotSent, attempt_ids),
    st.builds(Released, attempt_ids, st.none() | moments),
    st.builds(Released, attempt_ids, st.none(), st.sampled_from(["dnc", "denied"])),
    st.builds(Disposed, attempt_ids, retry_at=moments),
    st.builds(Disposed, attempt_ids, final_outcome=outcomes, final_reason=st.sampled_from(["sale", "dnc"])),
    st.builds(CallbackBooked, st.integers(1, 5), moments, st.none() | attempt_ids),
    st.builds(CalledBack, st.just("called_back")),
    st.builds(Revisited, moments),
    st.builds(RevisitAfterAnswer, moments),
]
events: st.SearchStrategy[LeadEvent] = st.sampled_from(kinds).flatmap(lambda kind: kind)
# Each event with the minutes the clock moved on before it.
sequences = st.lists(st.tuples(events, st.integers(0, 600)), min_size=1, max_size=40)
_fresh = count(1)


def resolved(event: LeadEvent, lead: Lead) -> LeadEvent:
    if getattr(event, "attempt_id", None) != HOLDER:
        return event
    return replace(event, attempt_id=lead.lease_attempt_id or f"n{next(_fresh)}")  # type: ignore[arg-type]


def check_consistent(lead: Lead) -> None:
    assert (lead.state is LeadState.leased) == (lead.lease_attempt_id is not None), lead
    assert lead.attempts >= 0, lead
    if lead.state is LeadState.done:
        assert lead.next_attempt_at is None and lead.callback_id is None, lead
    else:
        assert lead.final_outcome is None and lead.final_reason is None, lead


@settings(max_examples=800, deadline=None)
@given(sequences)
def test_random_event_sequences_keep_a_lead_consistent(sequence: list[tuple[LeadEvent, int]]) -> None:
    lead = NEW_LEAD
    done_since_reopen = False
    now = NOW
    for drawn, minutes in sequence:
        now += timedelta(minutes=minutes)
        event = resolved(drawn, lead)
        try:
            change = transition(lead, event, now)
        except IllegalTransition:
            continue
        assert change.before == lead
        after = change.after
        if isinstance(event, Leased):
            assert lead.state is LeadState.pending, "a lead is never leased twice at once, nor leased while done"
            assert lead.next_attempt_at is None or lead.next_attempt_at <= now, "a lead is leased only when due"
            assert not done_since_reopen, "a done lead is leased only after an event reopens it"
            assert after.attempts == lead.attempts + 1
        if isinstance(event, AttemptEnded | AttemptEndedAsTold | NotSent | Released):
            assert lead.lease_attempt_id == event.attempt_id, "only the attempt holding the lease ends it"
        if isinstance(event, AttemptEnded):
            assert (after.state is LeadState.pending and after.next_attempt_at is not None) or (
                after.state is LeadState.done and after.final_outcome == event.outcome
            )
            assert after.attempts == lead.attempts - (1 if event.fault else 0)
        if after.state is LeadState.done:
            done_since_reopen = True
        elif lead.state is LeadState.done:
            assert isinstance(event, REOPENING), f"{type(event).__name__} reopened a done lead"
            done_since_reopen = False
        assert set(change.columns()) <= set(LEAD_COLUMNS)
        check_consistent(after)
        lead = after


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ATTEMPTS), st.sampled_from(ATTEMPTS), outcomes, steps)
def test_an_attempt_that_does_not_hold_the_lease_cannot_end_it(
    holder: str, other: str, outcome: str, step: Retry | Close
) -> None:
    leased = transition(NEW_LEAD, Leased(holder), NOW).after
    for event in (AttemptEnded(other, outcome, step), NotSent(other), Released(other)):
        if other == holder:
            transition(leased, event, NOW)
        else:
            with pytest.raises(IllegalTransition, match=f"leased by {holder}, not leased by attempt {other}"):
                transition(leased, event, NOW)


def test_a_callback_lead_keeps_the_callback_priority_on_retry_and_fulfils_it_on_close() -> None:
    booked = transition(NEW_LEAD, CallbackBooked(7, NOW), NOW).after
    assert (booked.priority, booked.callback_id, booked.attempts) == (PRIORITY_CALLBACK, 7, 0)
    leased = transition(booked, Leased("a1"), NOW).after
    retried = transition(leased, AttemptEnded("a1", "busy", Retry(NOW + timedelta(hours=1), 0)), NOW)
    assert (retried.after.priority, retried.after.callback_id, retried.closes_callback) == (PRIORITY_CALLBACK, 7, None)
    closed = transition(leased, AttemptEnded("a1", "answered", Close("answered")), NOW)
    assert (closed.after.callback_id, closed.closes_callback, closed.by_attempt) == (None, 7, "a1")


def test_a_disposition_on_a_lead_another_attempt_holds_is_refused() -> None:
    leased = transition(NEW_LEAD, Leased("a2"), NOW).after
    with pytest.raises(IllegalTransition, match="being called again"):
        transition(leased, Disposed("a1", retry_at=NOW), NOW)
    with pytest.raises(IllegalTransition, match="being called again"):
        transition(leased, CallbackBooked(1, NOW, "a1"), NOW)


# -- dispositions (pure) ----------------------------------------------------------

ACTIONS = {
    "sale": DispositionAction.close,
    "later": DispositionAction.callback,
    "stop": DispositionAction.dnc,
    "again": DispositionAction.retry,
}


def disposition(code: str, **kwargs: Any) -> Any:
    args: dict[str, Any] = dict(
        campaign="c", attempt_id="a1", attempt_outcome=None, retry_delay=None, callback_at=None, now=NOW
    )
    args.update(kwargs)
    return decide(code, ACTIONS, **args)


def test_what_each_disposition_does_to_the_lead() -> None:
    assert disposition("sale").lead_event == Disposed("a1", final_outcome="answered", final_reason="sale")
    stop = disposition("stop", attempt_outcome="abandoned")
    assert (stop.lead_event, stop.add_to_dnc) == (Disposed("a1", final_outcome="abandoned", final_reason="dnc"), True)
    assert disposition("again").lead_event == Disposed("a1", retry_at=NOW + timedelta(hours=1))
    assert disposition("again", retry_delay=timedelta(minutes=5)).lead_event == Disposed(
        "a1", retry_at=NOW + timedelta(minutes=5)
    )
    later = disposition("later", callback_at=NOW + timedelta(days=1))
    assert (later.lead_event, later.callback_at) == (None, NOW + timedelta(days=1))
    with pytest.raises(DispositionRefused, match="unknown disposition 'nope' for campaign c"):
        disposition("nope")
    for when in (None, NOW, NOW - timedelta(seconds=1)):
        with pytest.raises(DispositionRefused, match="needs callback_at"):
            disposition("later", callback_at=when)


# -- the store applies the pure result ---------------------------------------------


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


_phones = count(5550000)


async def new_lead(store: Store, campaign: str = "renewals") -> tuple[int, int]:
    campaign_id = await store.sync_campaign(campaign, "sales")
    phone = f"+1{next(_phones)}"
    await store.import_leads(campaign_id, [LeadRow(line=2, phone=phone)])
    async with store._read() as conn:
        lead_id = (await conn.execute(select(leads.c.id).where(leads.c.phone == phone))).scalar_one()
    return campaign_id, lead_id


def naive(lead: Lead) -> Lead:
    """The lead as SQLite gives it back: naive UTC times."""
    at = lead.next_attempt_at
    return Lead(**{**lead.__dict__, "next_attempt_at": at.astimezone(UTC).replace(tzinfo=None) if at else None})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequences)
async def test_the_store_writes_the_row_the_pure_function_says(
    store: Store, sequence: list[tuple[LeadEvent, int]]
) -> None:
    _, lead_id = await new_lead(store)
    expected = NEW_LEAD
    async with store._read() as conn:
        assert await lead_transitions.read(conn, lead_id) == expected
    now = NOW
    for drawn, minutes in sequence:
        now += timedelta(minutes=minutes)
        event = resolved(drawn, expected)
        try:
            expected = naive(transition(expected, event, now.replace(tzinfo=None)).after)
        except IllegalTransition:
            async with store._write() as conn:
                with pytest.raises(IllegalTransition):
                    await lead_transitions.apply(conn, lead_id, event, now)
            continue
        async with store._write() as conn:
            await lead_transitions.apply(conn, lead_id, event, now)
        async with store._read() as conn:
            assert await lead_transitions.read(conn, lead_id) == expected, event


async def test_a_stale_writer_changes_nothing(store: Store) -> None:
    _, lead_id = await new_lead(store)
    async with store._write() as conn:
        read = await lead_transitions.read(conn, lead_id)
        assert read is not None
        await lead_transitions.apply(conn, lead_id, Leased("a1"), NOW, lead=read)
        # A second writer that read the lead before that lease:
        with pytest.raises(lead_transitions.StaleLead):
            await lead_transitions.apply(conn, lead_id, Leased("a2"), NOW, lead=read)
        now_leased = await lead_transitions.read(conn, lead_id)
    assert now_leased is not None
    assert (now_leased.lease_attempt_id, now_leased.attempts) == ("a1", 1)


async def test_an_attempt_ended_twice_changes_the_lead_once(store: Store) -> None:
    campaign_id, _ = await new_lead(store, "twice")
    [lease] = await store.lease_due_leads(campaign_id, 1, NOW)
    step = await finish_with_rules(store, lease.attempt_id, outcome="busy", now=NOW, rules={})
    again = await finish_with_rules(store, lease.attempt_id, outcome="answered", now=NOW, rules={})
    assert (step, again) == (Close("busy"), None)
    async with store._read() as conn:
        lead = await lead_transitions.read(conn, lease.lead_id)
    assert lead is not None and (lead.state, lead.final_outcome, lead.attempts) == (LeadState.done, "busy", 1)


async def callback_lead(store: Store, campaign: str) -> tuple[int, int, int]:
    campaign_id, lead_id = await new_lead(store, campaign)
    async with store._write() as conn:
        callback_id = await callback_store.schedule(
            conn, lead_id=lead_id, campaign_id=campaign_id, phone="+15550999", due_at=NOW,
            agent_id=None, requested_by=None, now=NOW - timedelta(hours=1),
        )
    return campaign_id, lead_id, callback_id


async def test_a_callback_lead_closed_before_its_originate_closes_its_callback(store: Store) -> None:
    # Before: the lead was done (do-not-call) yet kept its callback_id, and the
    # callback stayed `scheduled` in `dialer callbacks` for ever.
    campaign_id, lead_id, callback_id = await callback_lead(store, "dnc_at_dial_time")
    [lease] = await store.lease_due_leads(campaign_id, 1, NOW)
    await release_unsent(store, lease.attempt_id, final_reason="dnc")
    async with store._read() as conn:
        lead = await lead_transitions.read(conn, lead_id)
        state = (await conn.execute(select(callbacks.c.state).where(callbacks.c.id == callback_id))).scalar_one()
    assert lead is not None
    assert (lead.state, lead.final_reason, lead.callback_id, lead.attempts) == (LeadState.done, "dnc", None, 0)
    assert state == "done"


async def test_a_callback_key_pressed_while_the_lead_is_being_dialed_leaves_the_lease(store: Store) -> None:
    # Before: the booking cleared lease_attempt_id under the live outbound call, so
    # that call's end no longer found its lead and the lead could be leased twice.
    campaign_id, lead_id = await new_lead(store, "inbound_race")
    [lease] = await store.lease_due_leads(campaign_id, 1, NOW)
    async with store._write() as conn:
        await conn.execute(
            inbound_table.insert().values(
                id="in1", uniqueid="u1", campaign_id=campaign_id, lead_id=lead_id, queue="q", routing="general",
                started_at=NOW.replace(tzinfo=None),
            )
        )
    booked = await inbound_calls.request_callback(store, "in1", NOW + timedelta(hours=2), NOW)
    async with store._read() as conn:
        lead = await lead_transitions.read(conn, lead_id)
        rows = (await conn.execute(select(callbacks.c.id).where(callbacks.c.lead_id == lead_id))).all()
    assert booked is None and rows == []
    assert lead is not None and (lead.state, lead.lease_attempt_id) == (LeadState.leased, lease.attempt_id)
    assert await store.lease_due_leads(campaign_id, 1, NOW + timedelta(days=1)) == []


# -- adoption after a reconnect (dialer.core.reconcile) -----------------------------


def test_adoption_only_moves_an_attempt_forward_and_dates_what_it_missed() -> None:
    attempt = Attempt(id="a1", lead_id=1, phone="+15550001", queue="q", dialed_at=100.0, ring_timeout=30.0)
    ringing = catch_up(attempt, Adopt("a1", State.ringing, "PJSIP/carrier-00000001", None), 105.0)
    assert (ringing.state, ringing.ringing_at, ringing.answered_at) == (State.ringing, 105.0, None)
    assert ringing.changes == {"state": "ringing", "ringing_at": 105.0}
    attempt.state, attempt.answered_at, attempt.bridged_at = State.bridged, 110.0, 111.0
    attempt.agent_interface = "PJSIP/agent1"
    later = catch_up(attempt, Adopt("a1", State.up, "PJSIP/carrier-00000001", "PJSIP/agent2"), 120.0)
    assert (later.state, later.answered_at, later.bridged_at, later.agent_interface) == (
        State.bridged, 110.0, 111.0, "PJSIP/agent1"
    )
    assert later.changes == {} and later.channel == "PJSIP/carrier-00000001"
    fresh = Attempt(id="a2", lead_id=2, phone="+15550002", queue="q", dialed_at=100.0, ring_timeout=30.0)
    bridged = catch_up(fresh, Adopt("a2", State.bridged, "PJSIP/carrier-00000002", "PJSIP/agent1"), 130.0)
    assert bridged.changes == {"state": "bridged", "answered_at": 130.0, "bridged_at": 130.0}
    assert bridged.agent_interface == "PJSIP/agent1"
    assert closing(Vanished("a2", "interrupted", cut_short=True), 140.0) == {"ended_at": 140.0, "cut_short": True}


async def test_a_writer_that_lost_the_lead_to_another_changes_nothing(store: Store) -> None:
    # The lead moves on between a writer's read and its write (another connection, on a
    # database where that can happen): the attempt's end leaves the lead as the other left it.
    campaign_id, lead_id = await new_lead(store, "lost")
    [lease] = await store.lease_due_leads(campaign_id, 1, NOW)
    async with store._write() as conn:
        held = await lead_transitions.leased_by(conn, lease.attempt_id)
        assert held is not None
        await lead_transitions.apply(conn, lead_id, Disposed(lease.attempt_id, final_outcome="answered",
                                                             final_reason="sale"), NOW)
        with pytest.raises(IllegalTransition):
            await lead_transitions.apply(
                conn, lead_id, AttemptEnded(lease.attempt_id, "busy", Retry(NOW, 0)), NOW, lead=held[1]
            )
        after = await lead_transitions.read(conn, lead_id)
    assert after is not None and (after.state, after.final_reason) == (LeadState.done, "sale")


def test_a_callback_is_fulfilled_by_the_attempt_it_was_booked_on_and_only_replaced_by_a_callers_key() -> None:
    due = transition(NEW_LEAD, CallbackBooked(1, NOW), NOW).after
    on_call = transition(transition(due, Leased("a1"), NOW).after, CallbackBooked(2, NOW, "a1"), NOW)
    assert (on_call.closes_callback, on_call.by_attempt, on_call.after.callback_id) == (1, "a1", 2)
    by_key = transition(due, CallbackBooked(2, NOW), NOW)
    assert (by_key.closes_callback, by_key.after.callback_id) == (None, 2)


async def test_a_refusal_gives_its_attempt_back_and_only_refusals_spend_the_refused_rule(store: Store) -> None:
    from dialer.config.campaign_rules import RetryConfig, retry_rules

    # busy: 3 attempts of the lead; refused: the default 5. Counted among the lead's
    # attempts, three refusals (nobody was called) left a customer who was busy once with
    # no attempt to spare: the second busy closed the lead as max_attempts_busy.
    rules = retry_rules({"busy": RetryConfig(delay_minutes=0, max_attempts=3)})
    campaign_id, lead_id = await new_lead(store, "refusals")
    at = NOW
    steps = []
    for outcome in ("busy", "refused", "refused", "refused", "busy", "refused", "refused"):
        [lease] = await store.lease_due_leads(campaign_id, 1, at)
        steps.append(await finish_with_rules(store, lease.attempt_id, outcome=outcome, now=at, rules=rules))
        at += timedelta(hours=1)
    # Everything but the fifth refusal is retried; that one spends the refused rule, and
    # the lead has used two of its attempts.
    assert all(isinstance(step, Retry) for step in steps[:-1]), steps
    assert steps[-1] == Close("max_attempts_refused")
    async with store._read() as conn:
        lead = await lead_transitions.read(conn, lead_id)
    assert lead is not None and lead.attempts == 2
