"""Faults of the PBX and of our own stop (issue 11, items 12 and 13).

An Asterisk restart (`core restart now`) or a lost AMI connection ends calls the
customer never ended: such a call is `interrupted` (a conversation `cut_short`),
its lead due again by the campaign's rule without using up one of its attempts,
and it teaches the pacing and the abandon window nothing. At a stop, a call
still up is left to Asterisk with its lead leased for the next start to adopt:
never up in Asterisk and due at once.

`tests/fixtures/ami/restart.txt` is recorded from the sandbox (Asterisk 22,
`core restart now`), cut down to three calls: one ringing, one answered and
waiting in the queue, one bridged with agent2. Asterisk first sends a
SoftHangupRequest with Cause 4 (AST_SOFTHANGUP_SHUTDOWN) for every channel,
then the Hangups (cause 0 for the ringing and the queued call, 16 for the
bridged one, whose Hangup looks like any normal end), and its `Shutdown`
(Restart: True) only about a second later.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from dialer.ami.events import to_record
from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import SETTLE_SECONDS, Attempt, State
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.daemon.reconcile import Reconciler
from dialer.daemon.server import _BURST_SPAN, Daemon
from dialer.dispositions import apply_disposition
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.report import build_report, render_text
from dialer.store.lead_outcomes import open_attempts
from dialer.store.schema import leads
from dialer.store.store import Store

T0 = 1796043790.0  # the recording's clock
NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
RINGING = "70cebb5fe57e43019d6aab39e47d0eb8"
WAITING = "ebc9fbc964fd40c0afc675453382b32c"
BRIDGED = "8e064915884e4ea692ad0a9b7106edd2"
PHONES = {RINGING: "+12125550101", WAITING: "+12125550102", BRIDGED: "+12125550103"}
HANGUP_AT = {RINGING: 1.301940, WAITING: 1.301811, BRIDGED: 1.301849}  # seconds after T0
ID_FIELDS = ("Uniqueid", "Linkedid", "ActionID", "DestLinkedid", "Attempt")


def attempt(attempt_id: str) -> Attempt:
    return Attempt(id=attempt_id, lead_id=1, phone="1", queue="sales", dialed_at=T0, ring_timeout=25.0)


def play_all(attempts: list[Attempt], story: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    """Feed every record to every attempt (each must take only its own, and the Shutdown);
    finish each once it is settled. Returns when each settled."""
    settled: dict[str, float] = {}
    for event, at in story:
        record = to_record(event, at)
        if record is None or isinstance(record, (r.MemberStatus, r.MemberRemoved, r.DispositionRequested)):
            continue
        for a in attempts:
            a.apply(record)
            if a.id not in settled and a.settled(at):
                a.finish(at)
                settled[a.id] = at
    return settled


# -- the state machine ----------------------------------------------------------------


def shutdown_first(story: list[tuple[dict[str, str], float]]) -> list[tuple[dict[str, str], float]]:
    """The same restart as the order `Shutdown`, then the Hangups, with no SoftHangupRequest."""
    shutdown = next(item for item in story if item[0]["Event"] == "Shutdown")
    first_cut = next(at for event, at in story if event["Event"] == "SoftHangupRequest")
    rest = [item for item in story if item[0]["Event"] not in ("Shutdown", "SoftHangupRequest")]
    return [item for item in rest if item[1] < first_cut] + [(shutdown[0], first_cut)] + [
        item for item in rest if item[1] >= first_cut
    ]


@pytest.mark.parametrize("order", ["as-recorded", "shutdown-first"])
def test_a_restart_interrupts_ringing_calls_and_flags_the_answered_ones(ami_story, order: str) -> None:
    calls = [attempt(RINGING), attempt(WAITING), attempt(BRIDGED)]
    story = ami_story("restart.txt")
    settled = play_all(calls, story if order == "as-recorded" else shutdown_first(story))
    ringing, waiting, bridged = calls
    # The ringing call's Hangup has cause 0 and no Originate reason follows: on main it
    # was `failed` and its lead closed for good.
    assert ringing.outcome == "interrupted"
    assert not ringing.cut_short
    assert (waiting.outcome, waiting.cut_short, waiting.abandoned) == ("interrupted", True, False)
    assert (bridged.outcome, bridged.cut_short, bridged.agent_interface) == ("answered", True, "PJSIP/agent2")
    # Each is decided at its own Hangup: the PBX is gone, nothing else will come.
    assert settled == {aid: pytest.approx(T0 + s, abs=1e-6) for aid, s in HANGUP_AT.items()}
    assert [c.final_columns()["cut_short"] for c in calls] == [False, True, True]
    assert all(c.state is State.ended for c in calls)


def test_a_hangup_without_cause_and_without_a_reason_is_interrupted_not_failed() -> None:
    a = attempt(RINGING)
    a.apply(r.ChannelCreated(uniqueid=a.id, at=T0, channel="PJSIP/carrier-00000001"))
    a.apply(r.ChannelState(uniqueid=a.id, at=T0 + 0.4, state=5))
    a.apply(r.ChannelHangup(uniqueid=a.id, at=T0 + 9, cause=0, cause_text="Unknown"))
    assert not a.settled(T0 + 9), "the Originate's reason may still come"
    assert a.settled(T0 + 9 + SETTLE_SECONDS)
    assert a.finish(T0 + 9 + SETTLE_SECONDS) == "interrupted"
    assert not a.cut_short


def test_what_the_customer_said_before_the_shutdown_stands() -> None:
    busy, abandoned, machine = attempt("b" * 32), attempt("c" * 32), attempt("d" * 32)
    busy.apply(r.ChannelHangup(uniqueid=busy.id, at=T0 + 1, cause=17, cause_text="User busy"))
    abandoned.apply(r.ChannelState(uniqueid=abandoned.id, at=T0 + 2, state=6))
    abandoned.apply(r.DialerAbandoned(uniqueid=abandoned.id, at=T0 + 5))
    machine.apply(r.ChannelState(uniqueid=machine.id, at=T0 + 2, state=6))
    machine.apply(r.MachineDetected(uniqueid=machine.id, at=T0 + 4, left_message=False))
    shutdown = r.PbxShutdown(at=T0 + 6, restart=True)
    for a in (busy, abandoned, machine):
        a.apply(shutdown)
    for a in (abandoned, machine):
        a.apply(r.ChannelHangup(uniqueid=a.id, at=T0 + 6.01, cause=16, cause_text="Normal Clearing"))
    # The busy call ended before the shutdown: its own cause decides.
    assert busy.finish(T0 + 6.1) == "busy" and not busy.cut_short
    # The dialplan had already given up on this customer: a real abandon.
    assert abandoned.finish(T0 + 6.1) == "abandoned" and not abandoned.cut_short
    assert machine.finish(T0 + 6.1) == "machine"


def test_a_survey_the_pbx_cut_off_is_interrupted_but_a_finished_one_stands() -> None:
    cut, done = attempt("e" * 32), attempt("f" * 32)
    for a, status in ((cut, "partial"), (done, "completed")):
        a.apply(r.ChannelState(uniqueid=a.id, at=T0 + 2, state=6))
        a.apply(r.IvrStarted(uniqueid=a.id, at=T0 + 2.1, flow="survey"))
        a.apply(r.ShutdownHangup(uniqueid=a.id, at=T0 + 30))
        a.apply(r.ChannelHangup(uniqueid=a.id, at=T0 + 30.01, cause=16, cause_text="Normal Clearing"))
        a.apply(r.IvrEnded(uniqueid=a.id, at=T0 + 30.02, status=status))
        assert a.settled(T0 + 30.02)
    assert (cut.finish(T0 + 30.02), cut.cut_short) == ("interrupted", True)
    assert (done.finish(T0 + 30.02), done.cut_short) == ("completed", False)


def test_only_the_first_shutdown_counts_and_an_ended_attempt_ignores_it() -> None:
    a = attempt(RINGING)
    a.apply(r.ChannelHangup(uniqueid=a.id, at=T0 + 1, cause=17, cause_text="User busy"))
    a.finish(T0 + 1)
    assert a.apply(r.PbxShutdown(at=T0 + 2, restart=True)) == {}
    assert a.pbx_gone_at is None
    b = attempt(BRIDGED)
    b.apply(r.PbxShutdown(at=T0 + 2, restart=True))
    b.apply(r.PbxShutdown(at=T0 + 3, restart=False))
    assert b.pbx_gone_at == T0 + 2


# -- the daemon: events to the store ---------------------------------------------------


def simulated_pbx(scenario: dict[str, Customer] | None = None) -> SimulatedPbx:
    """Logged in, agent1 in the sales queue; a number not in `scenario` rings until the Originate's timeout."""
    return SimulatedPbx(random.Random(0), scenario or {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])


def make_campaign(**rules: Any) -> Campaign:
    return Campaign(
        name="faults",
        type="telemarketing",
        trunk="PJSIP/{number}@carrier",
        caller_id="+15550100",
        queue="sales",
        dialing={"max_lines": 20},
        **rules,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/faults.db")
    try:
        yield opened
    finally:
        await opened.close()


async def make_runner(store: Store, phones: list[str], **rules: Any) -> CampaignRunner:
    campaign = make_campaign(**rules)
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    board = AgentBoard({f"agent{i}": f"PJSIP/agent{i}" for i in range(1, 6)})
    for i in range(1, 6):
        board.apply(
            r.MemberStatus(at=0, queue="sales", interface=f"PJSIP/agent{i}", status=1, paused=False, in_call=False)
        )
    runner = CampaignRunner(
        campaign, campaign_id, store, simulated_pbx(), board, {"PJSIP/agent1": "agent1"},
        clock=lambda: NOW.timestamp(),
    )
    runner.tiers.set_ladder(list(DEFAULT_TIERS))  # as the daemon does: contact policies per tier
    await runner.tick(NOW.timestamp())
    await runner.wait_sends()
    assert len(runner.attempts) == len(phones)
    return runner


def daemon_for(tmp_path: Path, store: Store, runner: CampaignRunner, ami: SimulatedPbx, drain: float = 30.0) -> Daemon:
    config = tmp_path / "dialer.yaml"
    config.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/faults.db'}}\n"
        "agents: [{id: agent1, interface: PJSIP/agent1, queues: [sales]}]\n"
    )
    daemon = Daemon(load_config(config), {}, drain_timeout=drain, clock=lambda: NOW.timestamp())
    daemon.store = store
    daemon.ami = ami
    daemon.runners = {runner.campaign.name: runner}
    return daemon


def story_for(runner: CampaignRunner, raw: list[tuple[dict[str, str], float]]) -> list[tuple[dict[str, str], float]]:
    """The fixture's calls become the runner's attempts (by phone), at NOW's time."""
    ids = {a.phone: a.id for a in runner.attempts.values()}
    rename = {fixture_id: ids[phone] for fixture_id, phone in PHONES.items()}
    story = []
    for event, at in raw:
        event = {k: rename.get(v, v) if k in ID_FIELDS else v for k, v in event.items()}
        story.append((event, at - T0 + NOW.timestamp()))
    return story


async def consume(
    daemon: Daemon, ami: SimulatedPbx, story: list[tuple[dict[str, str], float]], *, cut_mid_burst: bool = False
) -> None:
    """Run the daemon's event consumer over a recorded story, fed as the PBX would feed it.

    The consumer writes a burst once it has been quiet for _BURST_SPAN; `cut_mid_burst`
    cancels it before that, as a restart of a dead consumer task or a shutdown would."""
    task = asyncio.create_task(daemon._consume_events())
    try:
        for item in story:
            ami.events.put_nowait(item)
        while not ami.events.empty():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05 if cut_mid_burst else _BURST_SPAN + 0.1)
        if not cut_mid_burst:
            # A loaded machine may be slower than the burst span: the rows are written when
            # the consumer says so, not when a clock says they should be.
            deadline = asyncio.get_running_loop().time() + 10
            while any(runner._writing for runner in daemon.runners.values()):
                assert asyncio.get_running_loop().time() < deadline, "the consumer never wrote its burst"
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def lead_rows(store: Store) -> dict[str, dict[str, Any]]:
    async with store.engine.connect() as conn:
        return {row["phone"]: dict(row) for row in (await conn.execute(select(leads))).mappings()}


async def attempt_rows(store: Store) -> dict[str, tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT phone, state, outcome, cut_short FROM call_attempts"))
        return {phone: (state, outcome, bool(cut)) for phone, state, outcome, cut in rows}


def pacing_memory(runner: CampaignRunner) -> tuple[object, object]:
    now = NOW.timestamp() + 60
    return copy.deepcopy(runner.stats.__dict__), runner.abandon_window.state(now, 0.03)


@pytest.mark.parametrize("cut_mid_burst", [False, True], ids=["burst_written", "consumer_cut_mid_burst"])
async def test_after_a_restart_every_lead_is_due_again_with_its_attempt_given_back(
    store: Store, tmp_path: Path, ami_story, cut_mid_burst: bool
) -> None:
    runner = await make_runner(store, list(PHONES.values()))
    memory = pacing_memory(runner)
    ami = simulated_pbx()
    daemon = daemon_for(tmp_path, store, runner, ami)
    # Cut mid-burst, the final rows are still in the consumer's batch: the runner's tick
    # must write them, or the leads stay leased until the daemon restarts.
    await consume(daemon, ami, story_for(runner, ami_story("restart.txt")), cut_mid_burst=cut_mid_burst)
    # A settle pass later, as the main loop's next tick would do.
    await runner.tick(NOW.timestamp() + 2 + SETTLE_SECONDS)
    await runner.wait_sends()

    rows = await lead_rows(store)
    for fixture_id, phone in PHONES.items():
        lead = rows[phone]
        assert (lead["state"], lead["attempts"], lead["lease_attempt_id"], lead["final_reason"]) == (
            "pending", 0, None, None
        ), f"{phone}: {lead}"
        # Due by the campaign's `interrupted` rule (default 30 min), from the call's end.
        due = NOW + timedelta(seconds=HANGUP_AT[fixture_id], minutes=30)
        assert abs((lead["next_attempt_at"].replace(tzinfo=UTC) - due).total_seconds()) < 0.01
    assert await attempt_rows(store) == {
        PHONES[RINGING]: ("ended", "interrupted", False),
        PHONES[WAITING]: ("ended", "interrupted", True),
        PHONES[BRIDGED]: ("ended", "answered", True),
    }
    # Nothing was learnt: no live answer, no abandon, no ring or talk time.
    assert pacing_memory(runner) == memory
    assert not runner.attempts
    # Not before the rule's delay, then all three are called again: the cut conversation
    # is no contact that would hold the customer back a week (standard tier's policy).
    pbx = runner.ami
    assert isinstance(pbx, SimulatedPbx)
    pbx.actions.clear()
    await runner.tick((NOW + timedelta(minutes=29)).timestamp())
    await runner.wait_sends()
    assert pbx.actions == []
    await runner.tick((NOW + timedelta(minutes=31)).timestamp())
    await runner.wait_sends()
    redialed = sorted(a.phone for a in runner.attempts.values())
    assert redialed == sorted(PHONES.values())


async def test_a_disposition_given_before_the_cut_stands(store: Store, tmp_path: Path, ami_story) -> None:
    runner = await make_runner(store, list(PHONES.values()))
    bridged_id = next(a.id for a in runner.attempts.values() if a.phone == PHONES[BRIDGED])
    ami = simulated_pbx()
    daemon = daemon_for(tmp_path, store, runner, ami)
    story = story_for(runner, ami_story("restart.txt"))
    first_cut = next(i for i, (event, _) in enumerate(story) if event["Event"] == "SoftHangupRequest")
    await consume(daemon, ami, story[:first_cut])
    await apply_disposition(store, {"faults": runner.campaign}, attempt_id=bridged_id, code="sale", now=NOW)
    await consume(daemon, ami, story[first_cut:])
    lead = (await lead_rows(store))[PHONES[BRIDGED]]
    assert (lead["state"], lead["final_reason"]) == ("done", "sale")
    assert (await attempt_rows(store))[PHONES[BRIDGED]] == ("ended", "answered", True)


async def test_faults_close_a_lead_only_by_the_interrupted_rule_even_without_one_in_the_campaign(
    store: Store,
) -> None:
    # `retries: {}`: no rule for anything, yet a fault must not close the lead.
    runner = await make_runner(store, [PHONES[RINGING]], retries={})
    for round_no in range(1, 4):
        a = next(iter(runner.attempts.values()))
        at = NOW.timestamp() + round_no * 3600
        runner.pbx_shutdown(r.PbxShutdown(at=at, restart=True))
        await runner.on_record(r.ChannelHangup(uniqueid=a.id, at=at + 0.01, cause=0, cause_text="Unknown"))
        lead = (await lead_rows(store))[PHONES[RINGING]]
        if round_no < 3:
            assert (lead["state"], lead["attempts"]) == ("pending", 0), lead
            await runner.tick(at + 31 * 60)
            await runner.wait_sends()
    # The default `interrupted` rule (3 in all) closes it after the third fault, still
    # with none of its customer attempts used.
    assert (lead["state"], lead["final_reason"], lead["attempts"]) == ("done", "max_attempts_interrupted", 0)


async def test_calls_followed_when_the_ami_connection_was_lost_and_gone_after_it_are_faults(
    store: Store,
) -> None:
    runner = await make_runner(store, list(PHONES.values()))
    by_phone = {a.phone: a for a in runner.attempts.values()}
    t = NOW.timestamp()
    await runner.on_record(r.ChannelState(uniqueid=by_phone[PHONES[RINGING]].id, at=t + 1, state=5))
    await runner.on_record(r.ChannelState(uniqueid=by_phone[PHONES[WAITING]].id, at=t + 3, state=6))
    await runner.on_record(
        r.AgentConnected(uniqueid=by_phone[PHONES[BRIDGED]].id, at=t + 4, queue="sales", interface="PJSIP/agent1")
    )
    # The connection drops (no Shutdown seen); on the new login no channel is left.
    ami = simulated_pbx()
    reconciler = Reconciler(store, ami, lambda: {"faults": runner}, lambda: t + 60)
    summary = await reconciler.reconcile(cutoff=t + 50)
    assert (summary.adopted, summary.closed) == (0, 3)
    rows = await lead_rows(store)
    assert {p: (rows[p]["state"], rows[p]["attempts"]) for p in PHONES.values()} == {
        p: ("pending", 0) for p in PHONES.values()
    }
    assert await attempt_rows(store) == {
        PHONES[RINGING]: ("ended", "interrupted", False),
        PHONES[WAITING]: ("ended", "interrupted", True),
        PHONES[BRIDGED]: ("ended", "answered", True),
    }
    assert not any(a.get("Action") == "Originate" for a in ami.actions)


# -- our own stop ---------------------------------------------------------------------


@pytest.mark.parametrize("second_signal", [False, True], ids=["drain-deadline", "second-signal"])
async def test_a_call_up_at_the_stop_is_left_to_asterisk_and_its_lead_is_not_due(
    store: Store, tmp_path: Path, second_signal: bool
) -> None:
    runner = await make_runner(store, [PHONES[BRIDGED], PHONES[RINGING]])
    bridged = next(a for a in runner.attempts.values() if a.phone == PHONES[BRIDGED])
    ended = next(a for a in runner.attempts.values() if a.phone == PHONES[RINGING])
    t = NOW.timestamp()
    await runner.on_record(r.AgentConnected(uniqueid=bridged.id, at=t + 4, queue="sales", interface="PJSIP/agent1"))
    # This one's channel is gone, only its settle time is left: it gets its final row.
    await runner.on_record(r.ChannelHangup(uniqueid=ended.id, at=t + 5, cause=0, cause_text="Unknown"))
    # In Asterisk, the bridged call is up: its customer talks to agent1.
    ami = simulated_pbx({PHONES[BRIDGED]: Customer("answer", after=0.01, talk=600)})
    await ami.originate(attempt_id=bridged.id, channel=f"PJSIP/{PHONES[BRIDGED]}@carrier", context="dialer-outbound",
                        exten="answered", timeout_ms=25000, caller_id="+15550100",
                        variables={"DIALER_ATTEMPT": bridged.id, "DIALER_QUEUE": "sales"})
    await asyncio.sleep(0.7)  # agent1's phone answers after 0.5 s
    assert [b.attempt_id for b in ami.bridged["PJSIP/agent1"]] == [bridged.id]
    before = len(ami.actions)
    daemon = daemon_for(tmp_path, store, runner, ami, drain=0.0)
    daemon.should_exit = True
    daemon.force_exit = second_signal
    closed: list[bool] = []
    store_close = store.close

    async def keep_open() -> None:
        closed.append(True)

    store.close = keep_open  # type: ignore[method-assign]  # the fixture closes it
    try:
        await daemon.shutdown()
    finally:
        store.close = store_close  # type: ignore[method-assign]
    assert closed
    # The bridged call is still up in Asterisk: its attempt stays open, its lead leased.
    lead = (await lead_rows(store))[PHONES[BRIDGED]]
    assert (lead["state"], lead["lease_attempt_id"]) == ("leased", bridged.id), lead
    assert [o.id for o in await open_attempts(store)] == [bridged.id]
    assert (await attempt_rows(store))[PHONES[RINGING]] == ("ended", "interrupted", False)
    # Nothing hung the customer up.
    assert not any(a.get("Action") in ("Hangup", "Originate") for a in ami.actions[before:])

    # The next start finds the call still up and adopts it; the lead is due only once it ends.
    nxt = CampaignRunner(
        runner.campaign, runner.campaign_id, store, ami, runner.board,
        {"PJSIP/agent1": "agent1"},
        clock=lambda: t + 30,
    )
    await ami.connect_once()  # the next start logs in again
    assert ami.bridged["PJSIP/agent1"][0].end is None  # the stop left the call alone
    reconciler = Reconciler(store, ami, lambda: {"faults": nxt}, lambda: t + 30)
    assert (await reconciler.reconcile(cutoff=t + 30)).adopted == 1
    await nxt.on_record(r.ChannelHangup(uniqueid=bridged.id, at=t + 90, cause=16, cause_text="Normal Clearing"))
    lead = (await lead_rows(store))[PHONES[BRIDGED]]
    assert (lead["state"], lead["final_outcome"]) == ("done", "answered")
    assert (await attempt_rows(store))[PHONES[BRIDGED]] == ("ended", "answered", False)


# -- the report -----------------------------------------------------------------------


def test_the_report_shows_faults_apart_and_keeps_them_out_of_the_abandon_rate() -> None:
    dialed = datetime(2026, 6, 1, 15, 0)

    def row(n: int, outcome: str, cut: bool = False, bridged: bool = False) -> dict[str, Any]:
        return {
            "id": f"a{n}", "phone": f"+1212555010{n}", "attempt_no": 1, "outcome": outcome, "cut_short": cut,
            "hangup_cause": 16, "agent_id": "agent1" if bridged else None, "dialed_at": dialed,
            "answered_at": dialed + timedelta(seconds=3),
            "bridged_at": dialed + timedelta(seconds=4) if bridged else None,
            "ended_at": dialed + timedelta(seconds=10 if cut else 64),
        }

    attempts = [
        row(1, "answered", bridged=True),
        row(2, "abandoned"),
        row(3, "answered", cut=True, bridged=True),
        row(4, "interrupted", cut=True),
        row(5, "interrupted"),
    ]
    report = build_report("faults", [{"state": "pending"}] * 3 + [{"state": "done"}] * 2, attempts)
    assert report["outcomes"] == {"abandoned": 1, "answered": 2, "interrupted": 2}
    assert (report["interrupted"], report["cut_short"]) == (2, {"answered": 1, "interrupted": 1})
    # One answered and one abandoned: the cut conversation is no live answer of the rate.
    assert (report["live_answered"], report["abandon_rate"]) == (2, 0.5)
    assert report["mean_talk_seconds"] == 60.0  # the cut call's 6 s are not a talk time
    assert [c["cut_short"] for c in report["calls"]] == [False, False, True, True, False]
    assert "ended by a PBX fault: 2 interrupted (1 after the answer), 1 conversation(s) cut short" in render_text(
        report
    )
