"""The simulated PBX: the same interface as the AMI gateway, Asterisk's own event order, the daemon on it.

The orders compared here come from tests/fixtures/ami (recorded from the sandbox's
Asterisk 22: restart.txt, and the single-call dialogues in the same format).
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dialer.ami.errors import AmiActionFailed, AmiLoginFailed, AmiNotConnected, AmiTimeout, AmiUnsafeValue
from dialer.ami.events import SUBSCRIBED, WANTED, to_record
from dialer.ami.gateway import AmiGateway
from dialer.config.loader import load_config
from dialer.config.models import AmiServer, Campaign
from dialer.core import records as r
from dialer.daemon.server import Daemon
from dialer.leads.csv_import import LeadRow
from dialer.pbx.protocol import Pbx
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store.store import Store

Story = list[tuple[dict[str, str], float]]

# Events whose order the daemon's reading depends on; the rest (VarSet, Newexten, RTCP...) it drops.
COMPARED = {
    "newchannel", "dialbegin", "newstate", "dialend", "queuecallerjoin", "agentcalled", "originateresponse",
    "queuecallerleave", "agentconnect", "bridgeenter", "hangup", "hanguprequest", "agentcomplete",
    "queuecallerabandon", "userevent", "softhanguprequest",
}
ATTEMPT = "1a2b3c4d5e6f40718293a4b5c6d7e8f9"


def _lower(event: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in event.items()}


def steps(story: Story, attempt: str) -> list[tuple[str, ...]]:
    """One call's events as (event, leg, what it says), the agent's own dial events left out.

    The leg is "customer" (the Originate's channel, whose Uniqueid is the attempt id) or "agent".
    """
    out: list[tuple[str, ...]] = []
    for raw, _ in story:
        e = _lower(raw)
        name = e.get("event", "").lower()
        if name not in COMPARED:
            continue
        ids = {e.get("uniqueid"), e.get("linkedid"), e.get("actionid"), e.get("destuniqueid"), e.get("destlinkedid")}
        if attempt not in ids:
            continue
        if name in ("dialbegin", "dialend"):
            if e.get("destuniqueid") != attempt:
                continue  # Queue()'s dial of the agent: not in every recording
            leg = "customer"
        else:
            leg = "customer" if e.get("uniqueid") == attempt else "agent"
        said = e.get("cause") or e.get("reason") or e.get("dialstatus") or e.get("userevent") or ""
        if name == "newstate":
            said = e.get("channelstate", "")
        if name == "originateresponse":
            said = f"{e.get('response')} {e.get('reason')}"
        out.append((name, leg, said))
    return out


# -- one interface ------------------------------------------------------------------------


def _members(cls: type) -> dict[str, Any]:
    return {n: v for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}


async def test_the_gateway_and_the_simulation_both_are_the_pbx_the_daemon_uses() -> None:
    server = AmiServer(username="dialer", secret="x")
    gateway = AmiGateway(server, wanted_events=WANTED)
    sim = SimulatedPbx(random.Random(1), {})
    protocol_methods = _members(Pbx)
    protocol_attributes = set(Pbx.__annotations__)
    assert {"action", "originate", "queue_add", "queue_remove", "queue_members", "run", "connect_once",
            "close", "on_login"} <= set(protocol_methods)
    assert {"connected", "events", "reconnects", "last_error", "on_action"} <= protocol_attributes
    for pbx in (gateway, sim):
        assert isinstance(pbx, Pbx)
        for name in protocol_attributes:
            assert hasattr(pbx, name), f"{type(pbx).__name__} lacks {name}"
        assert isinstance(pbx.connected, asyncio.Event) and isinstance(pbx.events, asyncio.Queue)
        for name, method in protocol_methods.items():
            mine = getattr(type(pbx), name)
            assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(method), name
            theirs = [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]
            ours = [(p.name, p.kind, p.default) for p in inspect.signature(mine).parameters.values()]
            assert ours == theirs, f"{type(pbx).__name__}.{name}{inspect.signature(mine)} is not {method}"


# -- Asterisk's order ----------------------------------------------------------------------


async def play(sim: SimulatedPbx, number: str, *, settle: float, variables: dict[str, str] | None = None,
               attempt: str = ATTEMPT, timeout_ms: int = 25000) -> Story:
    """Place one call the way the runner does and collect what the PBX says for `settle` seconds."""
    if not sim.connected.is_set():
        await sim.connect_once()
    await sim.originate(
        attempt_id=attempt, channel=f"PJSIP/{number}@carrier", context="dialer-outbound", exten="answered",
        timeout_ms=timeout_ms, caller_id="+15550100",
        variables={"DIALER_ATTEMPT": attempt, "DIALER_CAMPAIGN": "c", "DIALER_QUEUE": "sales",
                   "DIALER_AGENT_WAIT": "2", "DIALER_ABANDON_MSG": "custom/sorry", **(variables or {})},
    )
    await asyncio.sleep(settle)
    return drain(sim)


def drain(sim: SimulatedPbx) -> Story:
    story: Story = []
    while not sim.events.empty():
        story.append(sim.events.get_nowait())
    return story


async def with_agent(sim: SimulatedPbx) -> None:
    await sim.connect_once()
    await sim.queue_add("sales", "PJSIP/agent1", "Alice")


@pytest.mark.parametrize(
    ("fixture", "fixture_attempt", "customer", "agent"),
    [
        ("answered-bridged.txt", "1a2b3c4d5e6f40718293a4b5c6d7e8f9", Customer("answer", after=0.05, talk=0.1), True),
        ("answered-abandoned.txt", "2a3b4c5d6e7f40819203a4b5c6d7e8f9", Customer("answer", after=0.05), False),
        ("busy.txt", "3b5e0f2a9c4d4e6f8a1b2c3d4e5f6a7b", Customer("busy", after=0.05), False),
        ("no-answer.txt", "4c6f1a3b0d5e4f7a9b2c3d4e5f6a7b8c", Customer("no_answer", after=0.3), False),
        ("rejected.txt", "5d7a2b4c1e6f4a8b0c3d4e5f6a7b8c9d", Customer("rejected", after=0.3), False),
        ("congestion.txt", "6e8b3c5d2f7a4b9c1d4e5f6a7b8c9d0e", Customer("congestion", after=0.05), False),
        ("not-found.txt", "7f9c4d6e3a8b4c0d2e5f6a7b8c9d0e1f", Customer("not_found", after=0.05), False),
    ],
)
async def test_a_call_gives_the_events_asterisk_gave_in_its_order(
    ami_story: Callable[[str], Story], fixture: str, fixture_attempt: str, customer: Customer, agent: bool
) -> None:
    sim = SimulatedPbx(random.Random(7), {"15550001": customer}, agents={"PJSIP/agent1": 0.05},
                       abandon_message_seconds=0.05)
    if agent:
        await with_agent(sim)
    # Agent wait 2 s in `play`: the abandoned call's customer hears the message after it.
    story = await play(sim, "15550001", settle=2.3 if fixture == "answered-abandoned.txt" else 0.5)
    recorded = steps(ami_story(fixture), fixture_attempt)
    assert recorded, fixture
    assert steps(story, ATTEMPT) == recorded
    # The daemon's parser reads the simulation's events as it reads Asterisk's.
    assert all(to_record(e, at) is not None for e, at in story if e["Event"].lower() in WANTED)


async def test_the_observations_follow_the_calls() -> None:
    sim = SimulatedPbx(random.Random(3), {"15550001": Customer("answer", after=0.05, talk=0.1),
                                          "15550002": Customer("answer", after=0.05, patience=0.1)},
                       agents={"PJSIP/agent1": 0.05})
    await sim.connect_once()
    # No agent logged in yet: a1 waits out its agent wait and hears the message, a2 gives up first.
    await play(sim, "15550001", settle=0.05, attempt="a1", variables={"DIALER_AGENT_WAIT": "0.1"})
    await play(sim, "15550002", settle=0.5, attempt="a2")
    assert [(d.number, d.attempt_id) for d in sim.dial_log] == [("15550001", "a1"), ("15550002", "a2")]
    assert [(a.attempt_id, a.heard_message) for a in sim.abandoned] == [("a1", True), ("a2", False)]
    assert sim.bridged == {}
    await sim.queue_add("sales", "PJSIP/agent1", "Alice")
    await sim.queue_add("sales", "PJSIP/agent2", "Bob")
    sim.agent_logout("PJSIP/agent2")
    sim.scenario = {"15550003": Customer("answer", after=0.05, talk=0.1)}
    story = await play(sim, "15550003", settle=0.4, attempt="a3")
    assert [b.attempt_id for b in sim.bridged["PJSIP/agent1"]] == ["a3"]
    interval = sim.bridged["PJSIP/agent1"][0]
    assert interval.end is not None and interval.end > interval.start
    # The unregistered phone is never rung; the board hears it is unavailable.
    assert "PJSIP/agent2" not in sim.bridged
    members = {m["Interface"]: m["Status"] for m in await sim.queue_members("sales")}
    assert members == {"PJSIP/agent1": "1", "PJSIP/agent2": "5"}
    records = [rec for e, at in story if (rec := to_record(e, at)) is not None]
    assert any(isinstance(x, r.AgentConnected) and x.interface == "PJSIP/agent1" for x in records)


async def test_the_longest_idle_free_agent_takes_the_next_call() -> None:
    sim = SimulatedPbx(random.Random(3), lambda n: Customer("answer", after=0.02, talk=0.05),
                       agents={"PJSIP/agent1": 0.01, "PJSIP/agent2": 0.01})
    await sim.connect_once()
    await sim.queue_add("sales", "PJSIP/agent1", "Alice")
    await sim.queue_add("sales", "PJSIP/agent2", "Bob")
    await play(sim, "15550001", settle=0.2, attempt="a1")
    await play(sim, "15550002", settle=0.2, attempt="a2")
    await play(sim, "15550003", settle=0.2, attempt="a3")
    first = next(i for i, v in sim.bridged.items() if v[0].attempt_id == "a1")
    second = next(i for i, v in sim.bridged.items() if v[0].attempt_id == "a2")
    assert first != second
    assert sim.bridged[first][1].attempt_id == "a3"


async def test_a_restart_ends_every_call_as_asterisk_did_then_comes_back(ami_story: Callable[[str], Story]) -> None:
    sim = SimulatedPbx(random.Random(5), {
        "15550001": Customer("answer", after=0.05, talk=60),  # bridged at the restart
        "15550003": Customer("answer", after=0.05, talk=60),  # waiting in the queue
        "15550004": Customer("no_answer", after=60),  # still ringing
    }, agents={"PJSIP/agent2": 0.05})
    await sim.connect_once()
    await sim.queue_add("sales", "PJSIP/agent2", "Bob")
    await play(sim, "15550001", settle=0.3, attempt="bridged")
    await play(sim, "15550003", settle=0.3, attempt="waiting", variables={"DIALER_AGENT_WAIT": "60"})
    await play(sim, "15550004", settle=0.3, attempt="ringing")
    drain(sim)
    sim.restart(down_for=0.5)
    await asyncio.sleep(1.2)
    story = drain(sim)
    recorded = ami_story("restart.txt")
    for mine, theirs in (("bridged", "8e064915884e4ea692ad0a9b7106edd2"),
                         ("waiting", "ebc9fbc964fd40c0afc675453382b32c"),
                         ("ringing", "70cebb5fe57e43019d6aab39e47d0eb8")):
        theirs_steps = steps(recorded, theirs)
        # From the restart on: the first shutdown hang-up request, or the Originate's failure before it.
        first_cut = min(i for i, s in enumerate(theirs_steps)
                        if s in (("softhanguprequest", "agent", "4"), ("softhanguprequest", "customer", "4"),
                                 ("originateresponse", "customer", "Failure 0")))
        assert steps(story, mine) == theirs_steps[first_cut:], mine
    # Every Hangup after everything else, then Shutdown (Restart: True) last, about 1.1 s later.
    names = [e["Event"] for e, _ in story]
    assert names[-1] == "Shutdown" and story[-1][0]["Restart"] == "True"
    last_other = max(i for i, n in enumerate(names) if n not in ("Hangup", "Shutdown"))
    assert all(n == "Hangup" for n in names[last_other + 1:-1])
    assert 1.0 <= story[-1][1] - story[0][1] <= 1.3
    assert not sim.connected.is_set()
    with pytest.raises(AmiNotConnected):
        await sim.connect_once()
    await asyncio.sleep(0.5)
    await sim.connect_once()
    assert [e["Event"] for e, _ in drain(sim)] == ["FullyBooted"]
    assert await sim.queue_members("sales") == []  # persistentmembers = no


# -- faults ---------------------------------------------------------------------------------


async def test_faults_refused_originates_refused_logins_and_slow_replies() -> None:
    sim = SimulatedPbx(random.Random(1), {"15550001": Customer("busy", after=0.01)}, action_timeout=0.2)
    sim.login_refused = True
    with pytest.raises(AmiLoginFailed):
        await sim.connect_once()
    sim.login_refused = False
    await sim.connect_once()
    sim.refuse_originates(1)
    with pytest.raises(AmiActionFailed):
        await play(sim, "15550001", settle=0.05, attempt="x1")
    await play(sim, "15550001", settle=0.1, attempt="x2")
    assert [d.attempt_id for d in sim.dial_log] == ["x2"]
    sim.slow_replies(0.5)
    with pytest.raises(AmiTimeout):
        await sim.action({"Action": "Ping"})
    sim.slow_replies(0.0)
    with pytest.raises(AmiActionFailed):
        await sim.queue_add("no-such-queue", "PJSIP/agent1", "Alice")


async def test_a_half_open_connection_is_noticed_by_the_ping_and_a_drop_by_the_loss() -> None:
    sim = SimulatedPbx(random.Random(1), {}, action_timeout=0.1, ping_interval=0.1)
    logins: list[float] = []

    async def after_login() -> None:
        logins.append(asyncio.get_running_loop().time())

    sim.on_login(after_login)
    stopping = asyncio.Event()
    task = asyncio.create_task(sim.run(stopping))
    try:
        await asyncio.wait_for(sim.connected.wait(), 1)
        sim.half_open(0.3)
        await asyncio.sleep(0.25)
        assert not sim.connected.is_set(), "the ping must notice a connection that never answers"
        await asyncio.wait_for(sim.connected.wait(), 5)
        sim.drop_connection()
        assert not sim.connected.is_set()
        await asyncio.wait_for(sim.connected.wait(), 5)
        assert sim.reconnects == 2 and len(logins) == 3
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)


# -- the real daemon on it -------------------------------------------------------------------

T0 = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()  # a Tuesday afternoon in the US


async def test_the_daemon_runs_a_campaign_to_the_end_against_the_simulation(tmp_path: Path) -> None:
    phones = {f"+1212555{n:04d}": c for n, c in enumerate([
        Customer("answer", after=0.1, talk=0.3),
        Customer("answer", after=0.2, talk=0.2),
        Customer("answer", after=0.1, talk=0.2),
        Customer("answer", after=0.3, talk=0.1),
    ])}
    sim = SimulatedPbx(random.Random(11), lambda number: phones[number], agents={"PJSIP/agent1": 0.05, "PJSIP/agent2": 0.1})
    config_path = tmp_path / "dialer.yaml"
    config_path.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/sim.db'}}\n"
        "tick_interval: 0.05\n"
        "agents:\n"
        "  - {id: agent1, interface: PJSIP/agent1, queues: [sales]}\n"
        "  - {id: agent2, interface: PJSIP/agent2, queues: [sales]}\n"
    )
    campaign = Campaign(name="sim", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 2})
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    finally:
        await store.close()
    started = asyncio.get_running_loop().time()
    daemon = Daemon(load_config(config_path), {"sim": campaign}, until_done=True, drain_timeout=5,
                    clock=lambda: T0 + asyncio.get_running_loop().time() - started, pbx_factory=sim.attach)
    await asyncio.wait_for(daemon.serve(), 60)
    assert sorted(d.number for d in sim.dial_log) == sorted(phones)  # each once: answered, never redialled
    assert sum(len(v) for v in sim.bridged.values()) == 4 and not sim.abandoned
    # Each agent on one call at a time: its bridged intervals never overlap.
    for intervals in sim.bridged.values():
        for earlier, later in zip(intervals, intervals[1:]):
            assert earlier.end is not None and earlier.end <= later.start
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        progress = await store.progress(campaign_id)
        assert progress.finished and progress.outcomes == {"answered": 4}
    finally:
        await store.close()
    # The login flow ran against it unchanged: the daemon's events asked for, agents added,
    # their queue read, and removed at the stop.
    names = [a["Action"] for a in sim.actions]
    subscribed = len(SUBSCRIBED)
    assert names[:subscribed] == ["Filter"] * subscribed
    assert sim.event_filter == {name.lower() for name in SUBSCRIBED}
    assert sim.counters["events_filtered"] > 0  # DialBegin, BridgeEnter... never reached the daemon
    assert names[subscribed : subscribed + 3] == ["QueueAdd", "QueueAdd", "QueueStatus"]
    assert names[-2:] == ["QueueRemove", "QueueRemove"]


# -- the dialplan's branches ------------------------------------------------------------------


def records(story: Story) -> list[Any]:
    return [rec for e, at in story if (rec := to_record(e, at)) is not None]


async def test_a_key_customer_no_dedicated_agent_takes_falls_back_to_the_general_queue() -> None:
    sim = SimulatedPbx(random.Random(2), {"15550001": Customer("answer", after=0.02, talk=0.05)},
                       agents={"PJSIP/agent1": 0.02})
    await with_agent(sim)  # agent1 is in sales only; nobody in key-accounts
    story = await play(sim, "15550001", settle=0.5, variables={
        "DIALER_QUEUE": "key-accounts", "DIALER_AGENT_WAIT": "0.1", "DIALER_FALLBACK_QUEUE": "sales",
        "DIALER_FALLBACK_WAIT": "5", "DIALER_FALLBACK_PRIORITY": "20"})
    queue_steps = [(e["Event"], e.get("Queue", ""), e.get("UserEvent", "")) for e, _ in story
                   if e["Event"] in ("QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "UserEvent",
                                     "AgentConnect")]
    assert queue_steps == [
        ("QueueCallerJoin", "key-accounts", ""), ("QueueCallerAbandon", "key-accounts", ""),
        ("QueueCallerLeave", "key-accounts", ""), ("UserEvent", "", "DialerFallback"),
        ("QueueCallerJoin", "sales", ""), ("QueueCallerLeave", "sales", ""), ("AgentConnect", "sales", ""),
    ]
    assert not sim.abandoned and [b.attempt_id for b in sim.bridged["PJSIP/agent1"]] == [ATTEMPT]


async def test_answering_machine_detection_reports_the_machine_and_leaves_the_message() -> None:
    sim = SimulatedPbx(random.Random(2), {"15550001": Customer("machine", after=0.02)},
                       amd_seconds=(0.2, 0.3), machine_message_seconds=(0.3, 0.5))
    await sim.connect_once()
    story = await play(sim, "15550001", settle=0.01, variables={
        "DIALER_AMD": "1", "DIALER_ON_MACHINE": "leave_message", "DIALER_MACHINE_MSG": "custom/offer"})
    await asyncio.sleep(1.0)
    found = records(story + drain(sim))
    assert [type(x).__name__ for x in found] == [
        "ChannelCreated", "ChannelState", "ChannelState", "OriginateResult", "AmdVerdict", "MachineDetected",
        "ChannelHangup",
    ]
    verdict, machine, hangup = found[-3:]
    assert isinstance(verdict, r.AmdVerdict) and verdict.status == "MACHINE"
    assert isinstance(machine, r.MachineDetected) and machine.left_message
    assert isinstance(hangup, r.ChannelHangup) and hangup.cause == 16
    assert not any(e["Event"] == "QueueCallerJoin" for e, _ in story)


async def test_a_callback_promised_to_an_agent_rings_that_agent_first() -> None:
    sim = SimulatedPbx(random.Random(2), {"15550001": Customer("answer", after=0.02, talk=0.05)},
                       agents={"PJSIP/agent1": 0.02, "PJSIP/agent2": 0.02})
    await with_agent(sim)
    await sim.queue_add("sales", "PJSIP/agent2", "Bob")
    story = await play(sim, "15550001", settle=0.3, variables={"DIALER_AGENT": "PJSIP/agent2"})
    connected = [x for x in records(story) if isinstance(x, r.AgentConnected)]
    assert [(x.uniqueid, x.interface) for x in connected] == [(ATTEMPT, "PJSIP/agent2")]
    assert not any(e["Event"] in ("QueueCallerJoin", "AgentCalled") for e, _ in story)
    assert list(sim.bridged) == ["PJSIP/agent2"]


async def test_the_same_seed_gives_the_same_events() -> None:
    async def run(seed: int) -> list[dict[str, str]]:
        sim = SimulatedPbx(random.Random(seed), lambda n: Customer("answer", after=0.05, talk=0.2, patience=0.3),
                           agents={"PJSIP/agent1": 0.02}, clock=lambda: 1000.0)
        await with_agent(sim)
        for n in range(4):
            await sim.originate(attempt_id=f"a{n}", channel=f"PJSIP/1555000{n}@carrier", context="dialer-outbound",
                                exten="answered", timeout_ms=25000, caller_id="", variables={"DIALER_QUEUE": "sales"})
        await asyncio.sleep(1.0)  # one agent, four callers: the last ones give up
        return [e for e, _ in drain(sim)]

    first = await run(4)
    assert first == await run(4)
    assert {e["Event"] for e in first} >= {"AgentConnect", "QueueCallerAbandon"}


async def test_the_daemon_rides_out_a_restart_and_finishes_the_campaign(tmp_path: Path) -> None:
    phones = [f"+1212555{n:04d}" for n in range(6)]
    sim = SimulatedPbx(random.Random(5), lambda number: Customer("answer", after=0.1, talk=0.4),
                       agents={"PJSIP/agent1": 0.05, "PJSIP/agent2": 0.05})
    config_path = tmp_path / "dialer.yaml"
    config_path.write_text(
        "ami: [{username: dialer, secret: x, ping_interval: 0.5, action_timeout: 1}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/sim.db'}}\n"
        "tick_interval: 0.05\n"
        "agents:\n"
        "  - {id: agent1, interface: PJSIP/agent1, queues: [sales]}\n"
        "  - {id: agent2, interface: PJSIP/agent2, queues: [sales]}\n"
    )
    # A call the restart cuts is due again at once, so the run ends soon after.
    campaign = Campaign(name="sim", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 2},
                        retries={"interrupted": {"delay_minutes": 0, "max_attempts": 3},
                                 "refused": {"delay_minutes": 0, "max_attempts": 5}})
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    finally:
        await store.close()
    loop = asyncio.get_running_loop()
    started = loop.time()
    daemon = Daemon(load_config(config_path), {"sim": campaign}, until_done=True, drain_timeout=5,
                    clock=lambda: T0 + loop.time() - started, pbx_factory=sim.attach)

    async def restart_once_a_call_is_bridged() -> None:
        while not sim.bridged:
            await asyncio.sleep(0.01)
        sim.restart(down_for=0.3)

    fault = asyncio.create_task(restart_once_a_call_is_bridged())
    await asyncio.wait_for(daemon.serve(), 60)
    await fault
    assert sim.counters["restarts"] == 1 and sim.counters["logins"] >= 2
    # The agents were added again after the restart (persistentmembers = no), or nobody would be bridged since.
    restarted_at = next(b.end for v in sim.bridged.values() for b in v if b.end is not None)
    assert any(b.start > restarted_at for v in sim.bridged.values() for b in v)
    for intervals in sim.bridged.values():
        for earlier, later in zip(intervals, intervals[1:]):
            assert earlier.end is not None and earlier.end <= later.start
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        progress = await store.progress(campaign_id)
        attempts = await store.attempts(campaign_id)
        final = {lead["phone"]: (lead["state"], lead["final_outcome"]) for lead in await store.leads(campaign_id)}
    finally:
        await store.close()
    assert progress.finished and final == {p: ("done", "answered") for p in phones}
    # The calls the restart cut were no customer's answer: dialed again. Those sent while
    # Asterisk was going down, or not yet dialed, never reached the carrier; every other attempt did, once.
    assert any(a["outcome"] == "interrupted" or a["cut_short"] for a in attempts)
    assert len(sim.dial_log) == sum(1 for a in attempts if a["outcome"] not in ("not_sent", "refused"))
    assert len({d.attempt_id for d in sim.dial_log}) == len(sim.dial_log)


async def test_an_agent_who_does_not_pick_up_rings_out_and_the_next_one_is_rung() -> None:
    sim = SimulatedPbx(random.Random(2), {"15550001": Customer("answer", after=0.02, talk=0.05)},
                       agents={"PJSIP/agent1": None, "PJSIP/agent2": 0.05}, member_timeout=0.2, queue_retry=0.1)
    await with_agent(sim)
    await sim.queue_add("sales", "PJSIP/agent2", "Bob")
    story = await play(sim, "15550001", settle=0.6)
    found = [x for x in records(story) if isinstance(x, (r.AgentRinging, r.AgentConnected, r.AgentCompleted))]
    # agent1 is the longest idle (a tie broken by name), rings out (AgentRingNoAnswer), then agent2 takes it.
    assert [(type(x).__name__, x.interface) for x in found] == [
        ("AgentRinging", "PJSIP/agent1"), ("AgentCompleted", "PJSIP/agent1"),
        ("AgentRinging", "PJSIP/agent2"), ("AgentConnected", "PJSIP/agent2"), ("AgentCompleted", "PJSIP/agent2"),
    ]
    assert list(sim.bridged) == ["PJSIP/agent2"] and sim.counters["agent_no_answer"] == 1


async def test_values_that_would_break_ami_framing_are_refused_as_the_gateway_refuses_them() -> None:
    sim = SimulatedPbx(random.Random(1), {"15550001": Customer("busy", after=0.01)})
    await sim.connect_once()
    for channel, variables in (("PJSIP/15550001@carrier", {"DIALER_CAMPAIGN": "a\r\nAction: Hangup"}),
                               ("PJSIP/15550001@carrier&PJSIP/15550002@carrier", {})):
        with pytest.raises(AmiUnsafeValue):
            await sim.originate(attempt_id="x", channel=channel, context="dialer-outbound", exten="answered",
                                timeout_ms=25000, caller_id="", variables=variables)
    with pytest.raises(AmiUnsafeValue):
        await sim.action({"Action": "QueuePause", "Interface": "PJSIP/agent1\r\nAction: Originate"})
    await asyncio.sleep(0.05)
    assert sim.dial_log == [] and sim.actions == []
