"""The campaign rules where the daemon applies them: at dial time (DNC, deny patterns,
calling window), when an attempt ends (retries), on a disposition (callbacks, DNC)
and when a restart or reconnect leaves attempts open (reconciliation).

A real SQLite store; the simulated PBX, whose calls are what CoreShowChannels lists.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from dialer.config.models import Campaign
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import State
from dialer.core.reconcile import Adopt, LiveChannel, Vanished, channel_from_event, plan
from dialer.core.retry import PRIORITY_ABANDONED, PRIORITY_CALLBACK
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.daemon.reconcile import Reconciler
from dialer.dispositions import (
    DispositionError,
    UnknownAttempt,
    apply_disposition,
    on_disposition_event,
    parse_callback_at,
)
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store import dnc
from dialer.store.callbacks import list_callbacks
from dialer.store.lead_outcomes import open_attempts
from dialer.store.schema import GLOBAL_DNC, call_attempts, leads
from dialer.store.store import Store

# Monday 2026-06-01 15:00 UTC: 11:00 in New York, 08:00 in Los Angeles, 17:00 in Berlin.
NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
NY = "+12125550123"
LA = "+13105550100"
BERLIN = "+4930123456"


def simulated_pbx(scenario: dict[str, Customer] | None = None) -> SimulatedPbx:
    """Logged in, agents 1-5 in the sales queue; a number not in `scenario` rings until the Originate's timeout."""
    pbx = SimulatedPbx(random.Random(0), scenario or {})
    return pbx.logged_in(("sales", f"PJSIP/agent{i}", f"agent{i}", 0) for i in range(1, 6))


def make_campaign(**rules: Any) -> Campaign:
    return Campaign(
        name="rules",
        type="telemarketing",
        trunk="PJSIP/{number}@carrier",
        caller_id="+15550100",
        queue="sales",
        dialing={"max_lines": 20},
        **rules,
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


class Lab:
    def __init__(self, store: Store, campaign: Campaign, campaign_id: int, ami: SimulatedPbx | None = None) -> None:
        self.store = store
        self.ami = ami or simulated_pbx()
        # Five free agents: a cold campaign dials progressively, one call per free agent.
        board = AgentBoard({f"agent{i}": f"PJSIP/agent{i}" for i in range(1, 6)})
        for i in range(1, 6):
            board.apply(
                r.MemberStatus(at=0, queue="sales", interface=f"PJSIP/agent{i}", status=1, paused=False, in_call=False)
            )
        self.runner = CampaignRunner(
            campaign,
            campaign_id,
            store,
            self.ami,
            board,
            {"PJSIP/agent1": "agent1"},
            clock=lambda: NOW.timestamp(),
        )

    async def tick(self, at: datetime = NOW) -> list[str]:
        await self.runner.tick(at.timestamp())
        await self.runner.wait_sends()
        return [o["channel"].split("/")[1].split("@")[0] for o in self.ami.originated]

    async def lead(self, phone: str) -> dict[str, Any]:
        async with self.store.engine.connect() as conn:
            return dict((await conn.execute(select(leads).where(leads.c.phone == phone))).mappings().one())


async def lab_with(
    store: Store, phones: list[str], zones: dict[str, str] | None = None, pbx: SimulatedPbx | None = None, **rules: Any
) -> Lab:
    campaign = make_campaign(**rules)
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(
        campaign_id, [LeadRow(line=i + 2, phone=p, timezone=(zones or {}).get(p)) for i, p in enumerate(phones)]
    )
    return Lab(store, campaign, campaign_id, pbx)


# -- dial time ------------------------------------------------------------------


async def test_dnc_is_checked_at_dial_time_not_only_at_import(store: Store) -> None:
    lab = await lab_with(store, [NY, BERLIN, "+12125550199"])
    # Listed after the import: the global list and the campaign's own list both count.
    await dnc.add_numbers(store, [NY], scope=GLOBAL_DNC, source="test", now=NOW)
    await dnc.add_numbers(store, ["+12125550199"], scope="rules", source="test", now=NOW)
    await dnc.add_numbers(store, [BERLIN], scope="another-campaign", source="test", now=NOW)
    assert await lab.tick() == [BERLIN]
    lead = await lab.lead(NY)
    assert (lead["state"], lead["final_reason"], lead["attempts"]) == ("done", "dnc", 0)
    assert (await lab.lead("+12125550199"))["final_reason"] == "dnc"
    async with store.engine.connect() as conn:
        dialed = (await conn.execute(select(call_attempts.c.phone))).scalars().all()
    assert dialed == [BERLIN]  # no attempt row for a number never dialed


async def test_a_lead_outside_its_window_waits_for_its_own_morning(store: Store) -> None:
    # 15:00 UTC: open in New York (11:00) and Berlin (17:00), not yet in Los Angeles (08:00 < 09:00).
    lab = await lab_with(store, [NY, LA, BERLIN], calling_hours={"start": "09:00", "end": "18:00"})
    assert sorted(await lab.tick()) == sorted([NY, BERLIN])
    lead = await lab.lead(LA)
    assert lead["state"] == "pending" and lead["attempts"] == 0
    assert lead["next_attempt_at"] == datetime(2026, 6, 1, 16, 0)  # 09:00 PDT
    # Still too early at 15:59; due and dialed at 16:00.
    lab.ami.originated.clear()
    assert await lab.tick(datetime(2026, 6, 1, 15, 59, tzinfo=UTC)) == []
    assert await lab.tick(datetime(2026, 6, 1, 16, 0, tzinfo=UTC)) == [LA]


async def test_denied_numbers_are_never_dialed(store: Store) -> None:
    lab = await lab_with(store, ["911", NY], numbers={"format": "as_is"})
    assert await lab.tick() == [NY]
    assert (await lab.lead("911"))["final_reason"] == "denied_number"


# -- after an attempt -------------------------------------------------------------


async def end_call(lab: Lab, number: str, cause: int, *, answered: bool = False) -> str:
    attempt = next(a for a in lab.runner.attempts.values() if a.phone == number)
    at = NOW.timestamp() + 5
    if answered:
        await lab.runner.on_record(r.ChannelState(uniqueid=attempt.id, at=at - 3, state=6))
    await lab.runner.on_record(r.ChannelHangup(uniqueid=attempt.id, at=at, cause=cause, cause_text=None))
    return attempt.id


async def test_busy_is_retried_after_its_delay_and_closed_after_max_attempts(store: Store) -> None:
    lab = await lab_with(store, [NY], retries={"busy": {"delay_minutes": 10, "max_attempts": 2}})
    await lab.tick()
    await end_call(lab, NY, 17)
    lead = await lab.lead(NY)
    assert (lead["state"], lead["next_attempt_at"], lead["attempts"]) == ("pending", datetime(2026, 6, 1, 15, 10, 5), 1)
    lab.ami.originated.clear()
    assert await lab.tick(NOW + timedelta(minutes=9)) == []
    assert await lab.tick(NOW + timedelta(minutes=11)) == [NY]
    await end_call(lab, NY, 17)
    lead = await lab.lead(NY)
    assert (lead["state"], lead["final_outcome"], lead["final_reason"]) == ("done", "busy", "max_attempts_busy")


async def test_an_abandoned_call_is_retried_before_fresh_leads(store: Store) -> None:
    lab = await lab_with(store, [NY], retries={"abandoned": {"delay_minutes": 0, "max_attempts": 3}})
    await lab.tick()
    await end_call(lab, NY, 16, answered=True)  # answered, no agent: abandoned
    lead = await lab.lead(NY)
    assert (lead["state"], lead["priority"]) == ("pending", PRIORITY_ABANDONED)
    await store.import_leads(lab.runner.campaign_id, [LeadRow(line=9, phone=BERLIN)])
    lab.ami.originated.clear()
    lab.runner.campaign = lab.runner.campaign.model_copy(
        update={"dialing": lab.runner.campaign.dialing.model_copy(update={"max_lines": 1})}
    )
    assert await lab.tick(NOW + timedelta(seconds=10)) == [NY]


# -- dispositions and callbacks -------------------------------------------------------


async def test_a_callback_disposition_schedules_the_same_agent_and_is_listed(store: Store) -> None:
    lab = await lab_with(store, [NY])
    await lab.tick()
    attempt_id = next(iter(lab.runner.attempts))
    later = NOW + timedelta(hours=2)
    # During the call: the lead's fate is decided now; the call's own end does not undo it.
    result = await apply_disposition(
        store,
        {"rules": lab.runner.campaign},
        attempt_id=attempt_id,
        code="callback",
        now=NOW,
        callback_at=later,
        agent="agent1",
    )
    assert result.callback_id is not None
    await end_call(lab, NY, 16, answered=True)
    lead = await lab.lead(NY)
    assert (lead["state"], lead["next_attempt_at"], lead["priority"]) == (
        "pending",
        later.replace(tzinfo=None),
        PRIORITY_CALLBACK,
    )
    [callback] = await list_callbacks(store)
    assert (callback.phone, callback.agent_id, callback.state, callback.due_at) == (
        NY,
        "agent1",
        "scheduled",
        later.replace(tzinfo=None),
    )
    # Honoured once due (within a tick), not a minute before.
    lab.ami.originated.clear()
    assert await lab.tick(later - timedelta(minutes=1)) == []
    assert await lab.tick(later + timedelta(seconds=1)) == [NY]
    callback_attempt = next(iter(lab.runner.attempts))
    await lab.runner.on_record(
        r.AgentConnected(uniqueid=callback_attempt, at=later.timestamp() + 3, queue="sales", interface="PJSIP/agent1")
    )
    await end_call(lab, NY, 16, answered=True)
    [done] = await list_callbacks(store, include_closed=True)
    assert (done.state, done.attempt_id) == ("done", callback_attempt)
    assert await list_callbacks(store) == []
    lead = await lab.lead(NY)
    assert (lead["state"], lead["final_outcome"], lead["callback_id"]) == ("done", "answered", None)


async def test_a_dnc_disposition_lists_the_number_globally_and_closes_the_lead(store: Store) -> None:
    lab = await lab_with(store, [NY])
    await lab.tick()
    attempt_id = await end_call(lab, NY, 16, answered=True)
    await apply_disposition(store, {"rules": lab.runner.campaign}, attempt_id=attempt_id, code="dnc", now=NOW)
    lead = await lab.lead(NY)
    assert (lead["state"], lead["final_reason"]) == ("done", "dnc")
    assert await dnc.listed(store, "any-campaign", [NY]) == {NY}


async def test_dispositions_are_configurable_per_campaign_and_checked(store: Store) -> None:
    lab = await lab_with(store, [NY], dispositions={"booked": "close", "later": "callback"})
    await lab.tick()
    attempt_id = await end_call(lab, NY, 16, answered=True)
    campaigns = {"rules": lab.runner.campaign}
    with pytest.raises(DispositionError, match="unknown disposition 'sale'.*booked, later"):
        await apply_disposition(store, campaigns, attempt_id=attempt_id, code="sale", now=NOW)
    with pytest.raises(DispositionError, match="callback_at"):
        await apply_disposition(store, campaigns, attempt_id=attempt_id, code="later", now=NOW, callback_at=NOW)
    with pytest.raises(UnknownAttempt, match="no attempt"):
        await apply_disposition(store, campaigns, attempt_id="nope", code="booked", now=NOW)
    result = await apply_disposition(store, campaigns, lead_id=(await lab.lead(NY))["id"], code="booked", now=NOW)
    assert result.attempt_id == attempt_id
    lead = await lab.lead(NY)
    assert (lead["state"], lead["final_reason"], lead["final_outcome"]) == ("done", "booked", "abandoned")


async def test_the_ami_userevent_path_applies_a_disposition(store: Store) -> None:
    from dialer.ami.events import to_record

    lab = await lab_with(store, [NY])
    await lab.tick()
    attempt_id = await end_call(lab, NY, 16, answered=True)
    record = to_record(
        {
            "Event": "UserEvent",
            "UserEvent": "DialerDisposition",
            "Attempt": attempt_id,
            "Code": "Callback",
            "CallbackAt": "2026-06-02T10:00:00-04:00",
            "Agent": "agent1",
        },
        NOW.timestamp(),
    )
    assert isinstance(record, r.DispositionRequested)
    result = await on_disposition_event(store, {"rules": lab.runner.campaign}, record)
    assert result is not None and result.callback_id is not None
    [callback] = await list_callbacks(store, campaign="rules")
    assert callback.due_at == datetime(2026, 6, 2, 14, 0)
    bad = r.DispositionRequested(
        attempt_id=attempt_id, at=NOW.timestamp(), code="callback", callback_at="soon", agent=None
    )
    assert await on_disposition_event(store, {"rules": lab.runner.campaign}, bad) is None


def test_callback_times_parse_from_iso_or_epoch() -> None:
    assert parse_callback_at("1780326000") == datetime.fromtimestamp(1780326000, UTC)
    assert parse_callback_at("2026-06-02T10:00:00+02:00") == datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
    with pytest.raises(DispositionError, match="no UTC offset"):
        parse_callback_at("2026-06-02T10:00:00")


# -- reconciliation ------------------------------------------------------------------


def test_plan_adopts_channels_by_uniqueid_or_linkedid_and_closes_the_rest() -> None:
    channels = [
        LiveChannel("PJSIP/carrier-00000001", "a1", "a1", 6, True),
        LiveChannel("PJSIP/agent1-00000002", "x9", "a1", 6, True),
        LiveChannel("PJSIP/carrier-00000003", "a2", "a2", 6, False),
        LiveChannel("PJSIP/carrier-00000004", "a3", "a3", 5, False),
        LiveChannel("PJSIP/agent2-00000005", "y1", "a4", 6, True),  # only the agent's leg is left
    ]
    decisions = plan(
        [("a1", "up"), ("a2", "up"), ("a3", "dialing"), ("a4", "bridged"), ("a5", "bridged"), ("a6", "ringing")],
        channels,
    )
    assert decisions == [
        Adopt("a1", State.bridged, "PJSIP/carrier-00000001", "PJSIP/agent1"),
        Adopt("a2", State.up, "PJSIP/carrier-00000003", None),
        Adopt("a3", State.ringing, "PJSIP/carrier-00000004", None),
        Vanished("a4", "answered"),
        Vanished("a5", "answered"),
        Vanished("a6", "interrupted"),
    ]
    assert channel_from_event({"Event": "CoreShowChannelsComplete"}) is None
    assert channel_from_event(
        {
            "Event": "CoreShowChannel",
            "Channel": "PJSIP/c-1",
            "Uniqueid": "u",
            "Linkedid": "u",
            "ChannelState": "6",
            "BridgeId": "",
        }
    ) == LiveChannel("PJSIP/c-1", "u", "u", 6, False)


async def test_after_a_restart_live_calls_are_adopted_and_finished_ones_closed(store: Store) -> None:
    # A previous run leased three leads and wrote their attempts, then died. Asterisk went on:
    # NY is talking to agent1, LA was busy and BERLIN's call ended (it was bridged).
    pbx = simulated_pbx({NY: Customer("answer", after=0.01, talk=600), LA: Customer("busy", after=0.01),
                         BERLIN: Customer("rejected", after=0.01)})
    old = await lab_with(
        store, [NY, LA, BERLIN], pbx=pbx, retries={"interrupted": {"delay_minutes": 30, "max_attempts": 3}}
    )
    await old.tick()
    by_phone = {a.phone: a.id for a in old.runner.attempts.values()}
    await store.update_attempt(by_phone[BERLIN], state="bridged", bridged_at=NOW, answered_at=NOW)
    await asyncio.sleep(0.7)  # agent1's phone answers after 0.5 s
    assert [b.attempt_id for b in pbx.bridged["PJSIP/agent1"]] == [by_phone[NY]]
    dialed = len(pbx.dial_log)

    new = Lab(store, old.runner.campaign, old.runner.campaign_id, pbx)
    reconciler = Reconciler(store, new.ami, lambda: {"rules": new.runner}, lambda: NOW.timestamp() + 60)
    summary = await reconciler.reconcile(cutoff=NOW.timestamp() + 30)
    assert (summary.adopted, summary.closed) == (1, 2)
    adopted = new.runner.attempts[by_phone[NY]]
    assert adopted.state is State.bridged and adopted.agent_interface == "PJSIP/agent1"
    # The adopted call is followed to its end like any other.
    await new.runner.on_record(
        r.ChannelHangup(uniqueid=by_phone[NY], at=NOW.timestamp() + 90, cause=16, cause_text=None)
    )
    assert not new.runner.attempts
    assert await open_attempts(store) == []
    async with store.engine.connect() as conn:
        outcomes = dict((await conn.execute(select(call_attempts.c.phone, call_attempts.c.outcome))).all())
    assert outcomes == {NY: "answered", LA: "interrupted", BERLIN: "answered"}
    la = await new.lead(LA)
    assert (la["state"], la["next_attempt_at"]) == ("pending", datetime(2026, 6, 1, 15, 31))
    assert (await new.lead(BERLIN))["state"] == "done"
    # Nothing was dialed again by reconciling.
    assert len(pbx.dial_log) == dialed


async def test_a_reconnect_leaves_attempts_sent_after_the_login_alone(store: Store) -> None:
    # Both calls are over in Asterisk: no channel of theirs is listed.
    lab = await lab_with(
        store, [NY, LA], pbx=simulated_pbx({NY: Customer("busy", after=0.01), LA: Customer("busy", after=0.01)})
    )
    await lab.tick()
    await asyncio.sleep(0.1)
    ny, la = (next(a for a in lab.runner.attempts.values() if a.phone == p) for p in (NY, LA))
    la.dialed_at = NOW.timestamp() + 100  # sent on the new connection: its channel may not exist yet
    reconciler = Reconciler(store, lab.ami, lambda: {"rules": lab.runner}, lambda: NOW.timestamp() + 101)
    summary = await reconciler.reconcile(cutoff=NOW.timestamp() + 50)
    assert (summary.adopted, summary.closed) == (0, 1)
    assert list(lab.runner.attempts) == [la.id]
    assert reconciler.gate.is_set()


async def test_a_due_callback_waits_for_its_busy_agent_then_rings_that_agent(store: Store) -> None:
    lab = await lab_with(store, [NY], callbacks={"agent_grace": 120})
    await lab.tick()
    attempt_id = await end_call(lab, NY, 16, answered=True)
    due = NOW + timedelta(minutes=5)
    await apply_disposition(
        store,
        {"rules": lab.runner.campaign},
        attempt_id=attempt_id,
        code="callback",
        now=NOW,
        callback_at=due,
        agent="agent3",
    )
    board = lab.runner.board
    board.apply(r.AgentConnected(uniqueid="other-call", at=0, queue="sales", interface="PJSIP/agent3"))
    lab.ami.originated.clear()
    assert await lab.tick(due) == []  # agent3 is on another call: wait for it
    lead = await lab.lead(NY)
    assert (lead["state"], lead["attempts"]) == ("pending", 0)
    board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent3", status=1, paused=False, in_call=False))
    assert await lab.tick(due + timedelta(seconds=5)) == [NY]
    assert lab.ami.originated[0]["variables"]["DIALER_AGENT"] == "PJSIP/agent3"


async def test_after_the_grace_a_callback_goes_to_anyone(store: Store) -> None:
    lab = await lab_with(store, [NY], callbacks={"agent_grace": 60})
    await lab.tick()
    attempt_id = await end_call(lab, NY, 16, answered=True)
    due = NOW + timedelta(minutes=5)
    await apply_disposition(
        store,
        {"rules": lab.runner.campaign},
        attempt_id=attempt_id,
        code="callback",
        now=NOW,
        callback_at=due,
        agent="agent3",
    )
    lab.runner.board.apply(r.AgentConnected(uniqueid="other-call", at=0, queue="sales", interface="PJSIP/agent3"))
    lab.ami.originated.clear()
    assert await lab.tick(due + timedelta(seconds=61)) == [NY]
    assert "DIALER_AGENT" not in lab.ami.originated[0]["variables"]


def test_a_direct_callbacks_agent_answer_reads_as_agent_connect() -> None:
    from dialer.ami.events import to_record

    record = to_record(
        {"Event": "UserEvent", "UserEvent": "DialerAgentConnect", "Attempt": "a1", "Interface": "PJSIP/agent2"}, 5.0
    )
    assert record == r.AgentConnected(uniqueid="a1", at=5.0, queue="", interface="PJSIP/agent2")


async def test_the_report_says_why_leads_are_done_and_counts_dispositions(store: Store) -> None:
    from dialer.report import build_report, render_text

    lab = await lab_with(store, [NY, BERLIN, "911"], numbers={"format": "as_is"})
    await dnc.add_numbers(store, [BERLIN], scope=GLOBAL_DNC, source="test", now=NOW)
    await lab.tick()
    attempt_id = await end_call(lab, NY, 16, answered=True)
    await apply_disposition(store, {"rules": lab.runner.campaign}, attempt_id=attempt_id, code="sale", now=NOW)
    campaign_id = lab.runner.campaign_id
    report = build_report("rules", await store.leads(campaign_id), await store.attempts(campaign_id))
    assert report["final_reasons"] == {"denied_number": 1, "dnc": 1, "sale": 1}
    assert report["dispositions"] == {"sale": 1}
    assert "leads done because: denied_number 1, dnc 1, sale 1" in render_text(report)


async def test_an_originate_asterisk_refused_is_not_sent_and_the_lead_is_due_again(store: Store) -> None:
    lab = await lab_with(store, [NY])
    lab.ami.restart()  # an Originate now gets "Asterisk is shutting down"
    await lab.tick()
    assert lab.runner.attempts == {}
    lead = await lab.lead(NY)
    assert (lead["state"], lead["attempts"], lead["lease_attempt_id"]) == ("pending", 0, None)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(call_attempts.c.outcome, call_attempts.c.state))).all()
    assert [tuple(r) for r in rows] == [("not_sent", "ended")]


async def test_a_final_row_is_written_once(store: Store) -> None:
    from dialer.store.lead_outcomes import finish_with_rules

    lab = await lab_with(store, [NY])
    await lab.tick()
    attempt_id = await end_call(lab, NY, 17)
    again = await finish_with_rules(store, attempt_id, outcome="interrupted", now=NOW, rules={})
    assert again is None
    async with store.engine.connect() as conn:
        outcome = (await conn.execute(select(call_attempts.c.outcome))).scalar_one()
    assert outcome == "busy"
