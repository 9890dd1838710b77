"""AMD and IVR in the call's outcome: the dialplan's UserEvents, the attempt, the abandon rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.ami.events import to_record
from dialer.core import records as r
from dialer.core.amd import (
    FalsePositiveCounter,
    abandon_figures,
    estimated_false_positives,
)
from dialer.core.attempt import SETTLE_SECONDS, Attempt
from dialer.ivr.settings import AmdConfig, AmdParameters


def user_event(name: str, **headers: str) -> dict[str, str]:
    return {"Event": "UserEvent", "UserEvent": name, "Uniqueid": "chan-uid", **headers}


def test_the_amd_verdict_event() -> None:
    record = to_record(user_event("DialerAmd", Attempt="a1", Status="MACHINE", Cause="LONGGREETING-1500-1500"), 3.0)
    assert record == r.AmdVerdict("a1", 3.0, "MACHINE", "LONGGREETING-1500-1500")
    blank = to_record(user_event("DialerAmd", Attempt="a1", Status="", Cause=""), 3.0)
    assert blank == r.AmdVerdict("a1", 3.0, "NOTSURE", None)


def test_the_machine_event() -> None:
    assert to_record(user_event("DialerMachine", Attempt="a1", Action="leave_message"), 4.0) == r.MachineDetected(
        "a1", 4.0, True
    )
    assert to_record(user_event("DialerMachine", Attempt="a1", Action="hangup"), 4.0) == r.MachineDetected(
        "a1", 4.0, False
    )


def test_other_user_events_are_still_ignored_and_abandons_still_read() -> None:
    assert to_record(user_event("SomethingElse"), 1.0) is None
    assert to_record(user_event("DialerAbandoned", Attempt="a1"), 1.0) == r.DialerAbandoned("a1", 1.0)


def attempt() -> Attempt:
    a = Attempt(id="a1", lead_id=1, phone="555", queue="q", dialed_at=0.0, ring_timeout=20)
    a.apply(r.ChannelCreated("a1", 0.1, "PJSIP/carrier-1"))
    a.apply(r.ChannelState("a1", 2.0, 6))
    return a


def test_a_machine_is_its_own_outcome_with_the_verdict_stored() -> None:
    a = attempt()
    assert a.apply(r.AmdVerdict("a1", 3.0, "MACHINE", "LONGGREETING")) == {
        "amd_status": "MACHINE", "amd_cause": "LONGGREETING",
    }
    a.apply(r.MachineDetected("a1", 3.0, False))
    a.apply(r.ChannelHangup("a1", 4.0, 16, "Normal Clearing"))
    assert a.settled(4.0)
    assert a.finish(4.0) == "machine"
    assert not a.abandoned


def test_a_human_verdict_changes_nothing_else() -> None:
    a = attempt()
    a.apply(r.AmdVerdict("a1", 3.0, "HUMAN", "HUMAN-800-800"))
    a.apply(r.DialerAbandoned("a1", 5.0))
    a.apply(r.ChannelHangup("a1", 6.0, 16, None))
    assert a.finish(6.0) == "abandoned"


@pytest.mark.parametrize(("status", "outcome"), [("completed", "completed"), ("partial", "partial"),
                                                 ("opted_out", "opted_out")])
def test_an_ivr_call_ends_with_the_flows_status(status: str, outcome: str) -> None:
    a = attempt()
    a.apply(r.IvrStarted("a1", 2.5, "survey"))
    a.apply(r.ChannelHangup("a1", 9.0, 16, None))
    assert not a.settled(9.0 + SETTLE_SECONDS / 2)  # the AGI session reports just after the hangup
    a.apply(r.IvrEnded("a1", 9.1, status))
    assert a.settled(9.1)
    assert a.finish(9.1) == outcome
    assert not a.abandoned


def test_an_ivr_that_never_reports_is_decided_after_the_settle_time() -> None:
    a = attempt()
    a.apply(r.IvrStarted("a1", 2.5, "survey"))
    a.apply(r.ChannelHangup("a1", 9.0, 16, None))
    assert a.settled(9.0 + SETTLE_SECONDS)


def test_a_transfer_that_reached_an_agent_is_answered() -> None:
    a = attempt()
    a.apply(r.IvrStarted("a1", 2.5, "survey"))
    a.apply(r.IvrEnded("a1", 6.0, "transferred"))
    a.apply(r.AgentConnected("a1", 6.5, "retention", "PJSIP/agent1"))
    a.apply(r.ChannelHangup("a1", 20.0, 16, None))
    assert a.finish(20.0) == "answered"


def test_false_positives_are_estimated_rounding_up() -> None:
    assert [estimated_false_positives(n, 0.1) for n in (0, 1, 10, 11)] == [0, 1, 1, 2]
    assert estimated_false_positives(7, 0.0) == 0
    with pytest.raises(ValueError):
        estimated_false_positives(1, 1.5)


@given(st.integers(0, 300), st.floats(0, 1))
def test_the_counter_counts_as_many_as_the_estimate(machines: int, rate: float) -> None:
    counter = FalsePositiveCounter(rate)
    counted = sum(counter.machine() for _ in range(machines))
    assert counted == estimated_false_positives(machines, rate)


def test_the_counter_counts_nothing_when_the_rule_ignores_machines() -> None:
    counter = FalsePositiveCounter(1.0, counted=False)
    assert not any(counter.machine() for _ in range(5))


def test_abandon_figures_with_and_without_false_positives() -> None:
    outcomes = {"answered": 95, "abandoned": 1, "machine": 20, "busy": 7}
    plain = abandon_figures(outcomes, count_false_positives=False, rate=0.2)
    assert (plain.live_answered, plain.abandoned, plain.rate) == (96, 1, 0.0104)
    uk = abandon_figures(outcomes, count_false_positives=True, rate=0.2)
    assert (uk.live_answered, uk.abandoned, uk.false_positives, uk.rate) == (100, 5, 4, 0.05)


def test_amd_parameters_become_amds_positional_arguments() -> None:
    assert AmdParameters().argument() == ""
    assert AmdParameters(greeting=1200, maximum_number_of_words=3).argument() == "^1200^^^^^3"


def test_leaving_a_message_needs_one() -> None:
    with pytest.raises(ValueError, match="needs a message"):
        AmdConfig(enabled=True, on_machine="leave_message")
