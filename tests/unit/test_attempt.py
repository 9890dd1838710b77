"""One attempt's state machine (`dialer.core.attempt`), fed by records from recorded AMI stories."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dialer.ami.events import to_record
from dialer.core import records as r
from dialer.core.attempt import CAUSE_OUTCOMES, SETTLE_SECONDS, Attempt, State

T0 = 1732350000.0
RING_TIMEOUT = 25.0
OTHER = "0c1d2e3f405162738495a6b7c8d9eaf0"


def at_time(expected: float | None) -> object:
    # Epoch seconds: a relative tolerance would hide whole minutes.
    return None if expected is None else pytest.approx(expected, rel=0, abs=1e-6)


def new_attempt(attempt_id: str = "a" * 32, dialed_at: float = T0) -> Attempt:
    return Attempt(
        id=attempt_id, lead_id=7, phone="15550001", queue="sales", dialed_at=dialed_at, ring_timeout=RING_TIMEOUT
    )


def play(attempt: Attempt, story: list[tuple[dict[str, str], float]]) -> float | None:
    """Feed every call record of a story, as the shell would, and finish the attempt once it is settled.

    Records of other channels are fed too: the attempt must ignore them.
    Returns the time at which the attempt settled.
    """
    settled_at = None
    for event, at in story:
        record = to_record(event, at)
        if record is None or isinstance(record, (r.MemberStatus, r.MemberRemoved)):
            continue
        attempt.apply(record)
        if settled_at is None and attempt.settled(at):
            attempt.finish(at)
            settled_at = at
    return settled_at


@dataclass(frozen=True)
class Story:
    file: str
    attempt_id: str
    outcome: str
    channel: str
    settles_at: float
    ringing_at: float | None
    answered_at: float | None
    bridged_at: float | None
    hangup_cause: int
    abandoned: bool = False
    agent: str | None = None


STORIES = [
    Story("answered-bridged.txt", "1a2b3c4d5e6f40718293a4b5c6d7e8f9", "answered", "PJSIP/carrier-00000001",
          settles_at=T0 + 46.158, ringing_at=T0 + 0.381, answered_at=T0 + 3.481, bridged_at=T0 + 4.347,
          hangup_cause=16, agent="PJSIP/agent1"),
    Story("answered-abandoned.txt", "2a3b4c5d6e7f40819203a4b5c6d7e8f9", "abandoned", "PJSIP/carrier-00000009",
          settles_at=T0 + 9.692, ringing_at=T0 + 0.381, answered_at=T0 + 3.481, bridged_at=None,
          hangup_cause=16, abandoned=True),
    Story("busy.txt", "3b5e0f2a9c4d4e6f8a1b2c3d4e5f6a7b", "busy", "PJSIP/carrier-00000002",
          settles_at=T0 + 0.235, ringing_at=None, answered_at=None, bridged_at=None, hangup_cause=17),
    Story("no-answer.txt", "4c6f1a3b0d5e4f7a9b2c3d4e5f6a7b8c", "no_answer", "PJSIP/carrier-00000003",
          settles_at=T0 + 6.624, ringing_at=T0 + 0.421, answered_at=None, bridged_at=None, hangup_cause=19),
    Story("rejected.txt", "5d7a2b4c1e6f4a8b0c3d4e5f6a7b8c9d", "rejected", "PJSIP/carrier-00000004",
          settles_at=T0 + 6.624, ringing_at=T0 + 0.421, answered_at=None, bridged_at=None, hangup_cause=21),
    Story("congestion.txt", "6e8b3c5d2f7a4b9c1d4e5f6a7b8c9d0e", "congestion", "PJSIP/carrier-00000005",
          settles_at=T0 + 0.184, ringing_at=None, answered_at=None, bridged_at=None, hangup_cause=34),
    Story("not-found.txt", "7f9c4d6e3a8b4c0d2e5f6a7b8c9d0e1f", "failed", "PJSIP/carrier-00000006",
          settles_at=T0 + 0.184, ringing_at=None, answered_at=None, bridged_at=None, hangup_cause=1),
]


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.file.removesuffix(".txt"))
def test_recorded_story_gives_its_outcome_and_times(story: Story, ami_story) -> None:
    attempt = new_attempt(story.attempt_id)
    settled_at = play(attempt, ami_story(story.file))

    hint = "the story holds records of other channels and attempts, which Attempt.apply must ignore"
    assert attempt.outcome == story.outcome, f"{hint}; applied {attempt.history}"
    assert settled_at == at_time(story.settles_at), f"settled at the wrong event; {hint}"
    assert attempt.channel == story.channel, f"the customer's channel changed; {hint}"
    assert attempt.state is State.ended
    assert attempt.ringing_at == at_time(story.ringing_at)
    assert attempt.answered_at == at_time(story.answered_at)
    assert attempt.bridged_at == at_time(story.bridged_at)
    assert attempt.ended_at == at_time(story.settles_at)
    assert attempt.hangup_cause == story.hangup_cause
    assert attempt.abandoned is story.abandoned
    assert attempt.agent_interface == story.agent
    columns = attempt.final_columns()
    assert columns["ended_at"] == at_time(story.settles_at)
    assert columns["abandoned"] is story.abandoned
    assert columns["hangup_cause"] == story.hangup_cause


def test_records_for_other_calls_do_not_touch_the_attempt() -> None:
    attempt = new_attempt()
    foreign: list[r.CallRecord] = [
        r.ChannelCreated(uniqueid=OTHER, at=T0 + 0.1, channel="PJSIP/carrier-000000a1"),
        r.ChannelState(uniqueid=OTHER, at=T0 + 0.2, state=6),
        r.OriginateResult(attempt_id=OTHER, at=T0 + 0.3, success=True, reason=4),
        r.AgentConnected(uniqueid=OTHER, at=T0 + 0.4, queue="sales", interface="PJSIP/agent1"),
        r.DialerAbandoned(uniqueid=OTHER, at=T0 + 0.5),
        r.ChannelHangup(uniqueid=OTHER, at=T0 + 0.6, cause=16, cause_text="Normal Clearing"),
    ]
    for record in foreign:
        assert attempt.apply(record) == {}, f"{type(record).__name__} of {OTHER} changed attempt {attempt.id}"
    assert attempt.state is State.dialing
    assert not attempt.settled(T0 + 60)
    assert (attempt.channel, attempt.answered_at, attempt.hangup_at, attempt.abandoned) == (None, None, None, False)


def test_apply_returns_the_columns_that_changed() -> None:
    attempt = new_attempt()
    aid = attempt.id
    assert attempt.apply(r.ChannelCreated(uniqueid=aid, at=T0, channel="PJSIP/carrier-00000001")) == {
        "channel": "PJSIP/carrier-00000001",
        "uniqueid": aid,
    }
    assert attempt.apply(r.ChannelState(uniqueid=aid, at=T0 + 1, state=5)) == {"state": "ringing", "ringing_at": T0 + 1}
    assert attempt.apply(r.ChannelState(uniqueid=aid, at=T0 + 4, state=6)) == {"state": "up", "answered_at": T0 + 4}
    # A second sign of the answer (the queue join) changes nothing.
    assert attempt.apply(r.QueueJoined(uniqueid=aid, at=T0 + 4.1, queue="sales")) == {}
    # A late ringing state must not move an answered call back.
    assert attempt.apply(r.ChannelState(uniqueid=aid, at=T0 + 4.2, state=5)) == {}
    assert attempt.state is State.up
    assert attempt.apply(
        r.AgentConnected(uniqueid=aid, at=T0 + 5, queue="sales", interface="PJSIP/agent2")
    ) == {"state": "bridged", "bridged_at": T0 + 5}
    assert attempt.apply(r.ChannelHangup(uniqueid=aid, at=T0 + 50, cause=16, cause_text="Normal Clearing")) == {
        "hangup_cause": 16,
        "hangup_cause_text": "Normal Clearing",
    }
    assert attempt.history == ["ChannelCreated", "ChannelState", "ChannelState", "QueueJoined", "ChannelState",
                               "AgentConnected", "ChannelHangup"]


def test_a_successful_originate_response_counts_as_the_answer() -> None:
    attempt = new_attempt()
    changes = attempt.apply(r.OriginateResult(attempt_id=attempt.id, at=T0 + 3, success=True, reason=4))
    assert changes == {"originate_reason": 4, "state": "up", "answered_at": T0 + 3}
    assert attempt.live
    assert not attempt.settled(T0 + 100), "a live answered call is not over before its hangup"


def test_agent_connect_without_earlier_answer_still_sets_answered_at() -> None:
    attempt = new_attempt()
    attempt.apply(r.AgentConnected(uniqueid=attempt.id, at=T0 + 5, queue="sales", interface="PJSIP/agent1"))
    assert (attempt.answered_at, attempt.bridged_at, attempt.state) == (T0 + 5, T0 + 5, State.bridged)


def test_answered_then_hung_up_without_an_agent_is_abandoned_even_without_the_user_event() -> None:
    attempt = new_attempt()
    attempt.apply(r.ChannelState(uniqueid=attempt.id, at=T0 + 3, state=6))
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 4, cause=16, cause_text="Normal Clearing"))
    assert attempt.settled(T0 + 4)
    assert attempt.finish(T0 + 4) == "abandoned"
    assert attempt.abandoned
    assert attempt.final_columns()["abandoned"] is True


@pytest.mark.parametrize(("cause", "outcome"), sorted(CAUSE_OUTCOMES.items()))
def test_a_known_hangup_cause_settles_at_once_without_the_originate_response(cause: int, outcome: str) -> None:
    attempt = new_attempt()
    attempt.apply(r.ChannelCreated(uniqueid=attempt.id, at=T0, channel="PJSIP/carrier-00000001"))
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 1, cause=cause, cause_text=None))
    assert attempt.settled(T0 + 1)
    assert attempt.finish(T0 + 1) == outcome


def test_hangup_with_an_unknown_cause_waits_for_the_originate_response() -> None:
    attempt = new_attempt()
    attempt.apply(r.ChannelCreated(uniqueid=attempt.id, at=T0, channel="PJSIP/carrier-00000001"))
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 20, cause=0, cause_text="Unknown"))
    assert not attempt.settled(T0 + 20)
    assert not attempt.settled(T0 + 20 + SETTLE_SECONDS - 0.01)
    # The Originate's reason arrives within the settle time and decides.
    attempt.apply(r.OriginateResult(attempt_id=attempt.id, at=T0 + 20.5, success=False, reason=3))
    assert attempt.settled(T0 + 20.5)
    assert attempt.finish(T0 + 20.5) == "no_answer"
    assert attempt.ended_at == T0 + 20, "ended_at is the hangup's time, not the decision's"


def test_hangup_alone_settles_after_the_settle_time_as_failed() -> None:
    attempt = new_attempt()
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 2, cause=None, cause_text=None))
    assert not attempt.settled(T0 + 2 + SETTLE_SECONDS - 0.01)
    assert attempt.settled(T0 + 2 + SETTLE_SECONDS)
    assert attempt.finish(T0 + 2 + SETTLE_SECONDS) == "failed"
    assert attempt.ended_at == T0 + 2


@pytest.mark.parametrize(("reason", "outcome"), [(5, "busy"), (8, "congestion"), (3, "no_answer"), (0, "refused")])
def test_failed_originate_without_any_channel_settles_after_the_settle_time(reason: int, outcome: str) -> None:
    attempt = new_attempt()
    attempt.apply(r.OriginateResult(attempt_id=attempt.id, at=T0 + 1, success=False, reason=reason))
    assert not attempt.settled(T0 + 1)
    assert not attempt.settled(T0 + 1 + SETTLE_SECONDS - 0.01)
    assert attempt.settled(T0 + 1 + SETTLE_SECONDS)
    assert attempt.finish(T0 + 1 + SETTLE_SECONDS) == outcome
    assert attempt.ended_at == T0 + 1 + SETTLE_SECONDS


def test_a_busy_hangup_cause_beats_the_originate_reason_0() -> None:
    attempt = new_attempt()
    attempt.apply(r.ChannelCreated(uniqueid=attempt.id, at=T0, channel="PJSIP/carrier-00000001"))
    attempt.apply(r.OriginateResult(attempt_id=attempt.id, at=T0 + 0.2, success=False, reason=0))
    assert not attempt.settled(T0 + 30), "with a channel, the hangup decides, however long it takes"
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 0.3, cause=17, cause_text="User busy"))
    assert attempt.settled(T0 + 0.3)
    assert attempt.finish(T0 + 0.3) == "busy"
    assert attempt.final_columns()["originate_reason"] == 0


def test_send_failed_settles_as_failed_after_the_ring_time_and_the_settle_time() -> None:
    attempt = new_attempt()
    attempt.send_failed(T0 + 1)
    assert attempt.send_failed_at == T0 + 1
    deadline = T0 + 1 + RING_TIMEOUT + SETTLE_SECONDS
    assert not attempt.settled(deadline - 0.01)
    assert attempt.settled(deadline)
    assert attempt.finish(deadline) == "failed"
    assert attempt.ended_at == deadline


def test_send_failed_but_the_call_went_out_lets_the_events_decide() -> None:
    attempt = new_attempt()
    attempt.send_failed(T0 + 1)
    attempt.apply(r.ChannelCreated(uniqueid=attempt.id, at=T0 + 1.1, channel="PJSIP/carrier-00000001"))
    assert not attempt.settled(T0 + 1 + RING_TIMEOUT + SETTLE_SECONDS + 60)
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 9, cause=21, cause_text="Call Rejected"))
    assert attempt.settled(T0 + 9)
    assert attempt.finish(T0 + 9) == "rejected"


def test_nothing_known_is_never_settled() -> None:
    attempt = new_attempt()
    assert not attempt.settled(T0 + 3600)


def test_an_ended_attempt_ignores_further_records() -> None:
    attempt = new_attempt()
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 1, cause=17, cause_text="User busy"))
    assert attempt.finish(T0 + 1) == "busy"
    assert not attempt.live
    assert attempt.apply(r.OriginateResult(attempt_id=attempt.id, at=T0 + 1.1, success=True, reason=4)) == {}
    assert attempt.answered_at is None
    assert attempt.outcome == "busy"
    assert not attempt.settled(T0 + 10), "an ended attempt must not be finished twice"


def test_bridged_call_reports_its_agent_in_the_final_columns() -> None:
    attempt = new_attempt()
    attempt.apply(r.AgentConnected(uniqueid=attempt.id, at=T0 + 5, queue="sales", interface="PJSIP/agent1"))
    attempt.apply(r.DialerAbandoned(uniqueid=attempt.id, at=T0 + 5.5))
    attempt.apply(r.ChannelHangup(uniqueid=attempt.id, at=T0 + 60, cause=16, cause_text="Normal Clearing"))
    assert attempt.finish(T0 + 60) == "answered"
    assert attempt.final_columns() == {
        "ended_at": T0 + 60,
        "abandoned": True,
        "agent_id": "PJSIP/agent1",
        "hangup_cause": 16,
        "hangup_cause_text": "Normal Clearing",
        "originate_reason": None,
        "cut_short": False,
    }
