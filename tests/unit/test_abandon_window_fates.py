"""A live answer enters the abandon window when its fate is known, not when its call ends.

Bridged to an agent: not abandoned, at the bridge. Abandoned: at the dialplan's abandon
event. Counted once whatever follows, and taken back when the PBX cuts the call short,
so that at the end the window agrees with the legal rate of `dialer report`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from dialer.core import records as r
from dialer.core.abandon import AbandonWindow
from dialer.core.campaign import CallToPlace, CampaignCore, CoreSettings, Finished
from dialer.core.originate import CampaignDialplan
from dialer.core.pacing import PacingMode, PacingPolicy
from dialer.report import build_report

SETTINGS = CoreSettings(
    policy=PacingPolicy(mode=PacingMode.predictive, max_lines=10), general_queue="sales", agent_wait=2,
    ring_timeout=25,
)
DIALPLAN = CampaignDialplan(campaign="spring", queue="sales", agent_wait=2)


def place(core: CampaignCore, attempt_id: str, at: float) -> None:
    core.place([CallToPlace(attempt_id, 1, "+12025550100")], at, DIALPLAN)


def counts(core: CampaignCore, now: float) -> tuple[int, int]:
    state = core.abandon_window.state(now, 0.03)
    return state.answered, state.abandoned


def test_bridged_calls_count_at_the_bridge_while_their_talk_goes_on() -> None:
    core = CampaignCore(SETTINGS)
    for n in range(20):
        place(core, f"talk{n}", 100.0 + n)
        core.observe(r.QueueJoined(f"talk{n}", 105.0 + n, "sales"))
        core.observe(r.AgentConnected(f"talk{n}", 106.0 + n, "sales", f"PJSIP/agent{n}"))
    place(core, "gone", 130.0)
    core.observe(r.QueueJoined("gone", 134.0, "sales"))
    core.observe(r.DialerAbandoned("gone", 136.0))
    # Minutes before any of the talks ends, the window holds 1 abandon of 21, not 1 of 1.
    assert counts(core, 137.0) == (21, 1)
    core.observe(r.ChannelHangup("gone", 136.5, 16, "Normal Clearing"))
    assert [f.outcome for f in core.settle(136.5)] == ["abandoned"]
    for n in range(20):
        core.observe(r.ChannelHangup(f"talk{n}", 300.0 + n, 16, "Normal Clearing"))
    finished = core.settle(400.0)
    assert [f.outcome for f in finished] == ["answered"] * 20
    assert counts(core, 400.0) == (21, 1)  # each counted once


def test_a_customer_who_hangs_up_in_the_queue_is_abandoned_at_the_hangup() -> None:
    core = CampaignCore(SETTINGS)
    place(core, "a1", 100.0)
    core.observe(r.QueueJoined("a1", 104.0, "sales"))
    assert counts(core, 105.0) == (0, 0)  # its fate is not known yet
    core.observe(r.ChannelHangup("a1", 105.0, 16, "Normal Clearing"))
    assert [f.outcome for f in core.settle(105.0)] == ["abandoned"]
    assert counts(core, 105.0) == (1, 1)


@pytest.mark.parametrize("abandon_first", [False, True])
def test_a_call_the_pbx_cuts_short_after_its_bridge_leaves_the_window(abandon_first: bool) -> None:
    core = CampaignCore(SETTINGS)
    place(core, "a1", 100.0)
    core.observe(r.QueueJoined("a1", 104.0, "sales"))
    if abandon_first:
        # Abandoned, then the PBX went: the customer was abandoned all the same.
        core.observe(r.DialerAbandoned("a1", 106.0))
    else:
        core.observe(r.AgentConnected("a1", 105.0, "sales", "PJSIP/agent1"))
    assert counts(core, 107.0) == (1, 1 if abandon_first else 0)
    core.pbx_shutdown(r.PbxShutdown(at=150.0, restart=True))
    core.observe(r.ChannelHangup("a1", 150.5, 0, "Unknown"))
    [finished] = core.settle(150.5)
    if abandon_first:
        assert (finished.outcome, finished.attempt.cut_short) == ("abandoned", False)
        assert counts(core, 151.0) == (1, 1)
    else:
        assert (finished.outcome, finished.attempt.cut_short) == ("answered", True)
        assert counts(core, 151.0) == (0, 0)


def test_at_the_stop_the_calls_left_to_asterisk_leave_the_window() -> None:
    core = CampaignCore(SETTINGS)
    place(core, "a1", 100.0)
    core.observe(r.AgentConnected("a1", 105.0, "sales", "PJSIP/agent1"))
    assert counts(core, 106.0) == (1, 0)
    core.leave_all()  # the next owner stores its outcome, and a restart reads it back
    assert counts(core, 106.0) == (0, 0)


def test_withdrawing_from_a_bucket_gone_out_of_the_window_takes_nothing() -> None:
    window = AbandonWindow(window=600.0, bucket=60.0)
    old = window.record(10.0, abandoned=True)
    new = window.record(700.0, abandoned=False)
    assert window.state(700.0).answered == 1
    window.withdraw(old, abandoned=True)
    assert (window.state(700.0).answered, window.state(700.0).abandoned) == (1, 0)
    window.withdraw(new, abandoned=False)
    assert window.state(700.0).answered == 0
    with pytest.raises(ValueError, match="nothing recorded"):
        window.withdraw(new, abandoned=False)


# -- one run, the window against the report ----------------------------------------------

FATES = ("talk", "abandon_event", "gave_up", "no_answer", "busy", "machine", "amd_then_agent")


def story(call: str, fate: str, dialed: float, rng: random.Random) -> list[tuple[float, object]]:
    answered = dialed + rng.uniform(3.0, 20.0)
    if fate == "talk":
        bridged = answered + rng.uniform(0.1, 1.9)
        return [
            (answered, r.ChannelState(call, answered, 6)),
            (answered + 0.05, r.QueueJoined(call, answered + 0.05, "sales")),
            (bridged, r.AgentConnected(call, bridged, "sales", "PJSIP/agent1")),
            (bridged + rng.uniform(30.0, 300.0), "hangup16"),
        ]
    if fate == "abandon_event":
        return [
            (answered, r.QueueJoined(call, answered, "sales")),
            (answered + 2.0, r.DialerAbandoned(call, answered + 2.0)),
            (answered + 2.5, "hangup16"),
        ]
    if fate == "gave_up":
        return [(answered, r.QueueJoined(call, answered, "sales")), (answered + 1.0, "hangup16")]
    if fate == "no_answer":
        return [(dialed + 25.0, "hangup19")]
    if fate == "busy":
        return [(dialed + 2.0, "hangup17")]
    if fate == "machine":
        return [
            (answered, r.ChannelState(call, answered, 6)),
            (answered + 3.0, r.MachineDetected(call, answered + 3.0, False)),
            (answered + 4.0, "hangup16"),
        ]
    # AMD said human late: the customer is bridged at once.
    return [
        (answered, r.ChannelState(call, answered, 6)),
        (answered + 3.0, r.AgentConnected(call, answered + 3.0, "sales", "PJSIP/agent2")),
        (answered + rng.uniform(10.0, 100.0), "hangup16"),
    ]


def row(finished: Finished) -> dict[str, Any]:
    def stamp(at: float | None) -> datetime | None:
        return None if at is None else datetime.fromtimestamp(at, UTC).replace(tzinfo=None)

    a = finished.attempt
    return {
        **a.final_columns(), "id": a.id, "phone": a.phone, "attempt_no": 1, "outcome": finished.outcome,
        "dialed_at": stamp(a.dialed_at), "answered_at": stamp(a.answered_at), "bridged_at": stamp(a.bridged_at),
        "ended_at": stamp(a.ended_at),
    }


@pytest.mark.parametrize("seed", range(1, 21))
def test_at_the_end_of_a_run_the_window_agrees_with_the_report(seed: int) -> None:
    """Calls of every fate, two PBX restarts cutting the calls up at the time short."""
    rng = random.Random(seed)
    core = CampaignCore(SETTINGS)
    shutdowns = sorted(rng.uniform(200.0, 1800.0) for _ in range(2))
    events: list[tuple[float, int, object]] = []
    for n in range(300):
        call, dialed = f"c{n}", rng.uniform(0.0, 2000.0)
        events.append((dialed, len(events), ("place", call)))
        steps = story(call, rng.choice(FATES), dialed, rng)
        cut = next((s for s in shutdowns if dialed < s < steps[-1][0]), None)
        if cut is not None:
            steps = [(at, rec) for at, rec in steps if at < cut] + [(cut + 0.5, "hangup0")]
        for at, rec in steps:
            events.append((at, len(events), rec if not isinstance(rec, str) else (rec, call)))
    events += [(s, len(events) + i, r.PbxShutdown(at=s, restart=True)) for i, s in enumerate(shutdowns)]
    finished: list[Finished] = []
    for at, _, event in sorted(events, key=lambda e: (e[0], e[1])):
        if isinstance(event, r.PbxShutdown):
            core.pbx_shutdown(event)
        elif isinstance(event, tuple) and event[0] == "place":
            place(core, event[1], at)
        elif isinstance(event, tuple):
            cause = int(event[0].removeprefix("hangup"))
            core.observe(r.ChannelHangup(event[1], at, cause, "x"))
            finished += core.settle(at)
        else:
            core.observe(event)  # type: ignore[arg-type]
    finished += core.settle(5000.0)
    assert len(finished) == 300 and not core.attempts
    report = build_report("spring", [], [row(f) for f in finished])
    assert sum(f.attempt.cut_short for f in finished) > 0  # the restarts did cut calls short
    assert report["abandoned"] > 0
    assert counts(core, 5000.0) == (report["live_answered"], report["abandoned"])
