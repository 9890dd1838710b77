"""`dialer.ami.events.to_record`: raw AMI header dicts to the core's plain records."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.ami.events import SUBSCRIBED, WANTED, to_record
from dialer.core import records as r

AT = 1732350000.25
AMI_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
ATTEMPT = "1a2b3c4d5e6f40718293a4b5c6d7e8f9"


def test_originate_response_is_keyed_by_its_action_id() -> None:
    record = to_record(
        {"Event": "OriginateResponse", "ActionID": ATTEMPT, "Response": "Failure", "Reason": "0",
         "Uniqueid": "<unknown>"},
        AT,
    )
    assert record == r.OriginateResult(attempt_id=ATTEMPT, at=AT, success=False, reason=0)


def test_originate_response_without_action_id_falls_back_to_the_uniqueid() -> None:
    record = to_record({"Event": "OriginateResponse", "Response": "Success", "Reason": "4", "Uniqueid": ATTEMPT}, AT)
    assert record == r.OriginateResult(attempt_id=ATTEMPT, at=AT, success=True, reason=4)


def test_originate_response_with_a_garbled_reason_keeps_the_result() -> None:
    record = to_record({"Event": "OriginateResponse", "ActionID": ATTEMPT, "Response": "Failure", "Reason": ""}, AT)
    assert record == r.OriginateResult(attempt_id=ATTEMPT, at=AT, success=False, reason=None)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"Event": "Newchannel", "Channel": "PJSIP/carrier-00000001", "Uniqueid": ATTEMPT},
            r.ChannelCreated(uniqueid=ATTEMPT, at=AT, channel="PJSIP/carrier-00000001"),
        ),
        (
            {"Event": "Newstate", "ChannelState": "5", "ChannelStateDesc": "Ringing", "Uniqueid": ATTEMPT},
            r.ChannelState(uniqueid=ATTEMPT, at=AT, state=5),
        ),
        (
            {"Event": "Hangup", "Uniqueid": ATTEMPT, "Cause": "17", "Cause-txt": "User busy"},
            r.ChannelHangup(uniqueid=ATTEMPT, at=AT, cause=17, cause_text="User busy"),
        ),
        (
            {"Event": "Hangup", "Uniqueid": ATTEMPT},
            r.ChannelHangup(uniqueid=ATTEMPT, at=AT, cause=None, cause_text=None),
        ),
        (
            {"Event": "QueueCallerJoin", "Uniqueid": ATTEMPT, "Queue": "sales", "Position": "1"},
            r.QueueJoined(uniqueid=ATTEMPT, at=AT, queue="sales"),
        ),
        (
            {"Event": "AgentCalled", "Uniqueid": ATTEMPT, "DestUniqueid": "1732350003.7", "Queue": "sales",
             "Interface": "PJSIP/agent1", "MemberName": "Alice"},
            r.AgentRinging(uniqueid=ATTEMPT, at=AT, queue="sales", interface="PJSIP/agent1"),
        ),
        (
            {"Event": "AgentConnect", "Uniqueid": ATTEMPT, "DestUniqueid": "1732350003.7", "Queue": "sales",
             "Interface": "PJSIP/agent1", "HoldTime": "1", "RingTime": "1"},
            r.AgentConnected(uniqueid=ATTEMPT, at=AT, queue="sales", interface="PJSIP/agent1"),
        ),
        (
            {"Event": "AgentComplete", "Uniqueid": ATTEMPT, "Queue": "sales", "Interface": "PJSIP/agent1",
             "TalkTime": "42", "Reason": "caller"},
            r.AgentCompleted(uniqueid=ATTEMPT, at=AT, queue="sales", interface="PJSIP/agent1", talk_time=42.0),
        ),
        (
            {"Event": "AgentRingNoAnswer", "Uniqueid": ATTEMPT, "Queue": "sales", "Interface": "PJSIP/agent2",
             "RingTime": "15"},
            r.AgentCompleted(uniqueid=ATTEMPT, at=AT, queue="sales", interface="PJSIP/agent2", talk_time=None),
        ),
        (
            {"Event": "UserEvent", "UserEvent": "DialerAbandoned", "Uniqueid": "1732350009.3", "Attempt": ATTEMPT},
            r.DialerAbandoned(uniqueid=ATTEMPT, at=AT),
        ),
        (
            {"Event": "UserEvent", "UserEvent": "DialerAbandoned", "Uniqueid": ATTEMPT},
            r.DialerAbandoned(uniqueid=ATTEMPT, at=AT),
        ),
        (
            {"Event": "QueueMemberRemoved", "Queue": "sales", "Interface": "PJSIP/agent1"},
            r.MemberRemoved(at=AT, queue="sales", interface="PJSIP/agent1"),
        ),
        (
            {"Event": "QueueMemberStatus", "Queue": "sales", "Interface": "PJSIP/agent1", "Status": "2",
             "Paused": "0", "InCall": "1"},
            r.MemberStatus(at=AT, queue="sales", interface="PJSIP/agent1", status=2, paused=False, in_call=True),
        ),
        (
            {"Event": "QueueMemberAdded", "Queue": "sales", "Interface": "PJSIP/agent1", "Status": "1",
             "Paused": "0", "InCall": "0"},
            r.MemberStatus(at=AT, queue="sales", interface="PJSIP/agent1", status=1, paused=False, in_call=False),
        ),
        (
            {"Event": "QueueMemberPause", "Queue": "sales", "Interface": "PJSIP/agent1", "Status": "1",
             "Paused": "1", "PausedReason": "lunch"},
            r.MemberStatus(at=AT, queue="sales", interface="PJSIP/agent1", status=1, paused=True, in_call=False),
        ),
        (
            # A QueueStatus list entry names the member by Location, not Interface.
            {"Event": "QueueMember", "Queue": "sales", "Location": "PJSIP/agent3", "Status": "6", "Paused": "0",
             "InCall": "0"},
            r.MemberStatus(at=AT, queue="sales", interface="PJSIP/agent3", status=6, paused=False, in_call=False),
        ),
        (
            {"Event": "QueueMemberStatus", "Queue": "sales", "StateInterface": "PJSIP/agent4", "Paused": "yes"},
            r.MemberStatus(at=AT, queue="sales", interface="PJSIP/agent4", status=0, paused=True, in_call=False),
        ),
    ],
    ids=lambda value: value["Event"] if isinstance(value, dict) else "",
)
def test_wanted_events_map_to_records(event: dict[str, str], expected: object) -> None:
    assert to_record(event, AT) == expected


def test_header_names_are_matched_ignoring_case() -> None:
    event = {"event": "HANGUP", "uniqueid": ATTEMPT, "cause": "21", "cause-txt": "Call Rejected"}
    assert to_record(event, AT) == r.ChannelHangup(uniqueid=ATTEMPT, at=AT, cause=21, cause_text="Call Rejected")


@pytest.mark.parametrize(
    "event",
    [
        {"Event": "DialBegin", "DestUniqueid": ATTEMPT, "DialString": "15550001@carrier"},
        {"Event": "RTCPSent", "Uniqueid": ATTEMPT},
        {"Event": "UserEvent", "UserEvent": "SomethingElse", "Uniqueid": ATTEMPT},
        {"Event": "Newstate", "Uniqueid": ATTEMPT},
        {"Event": "Newstate", "Uniqueid": ATTEMPT, "ChannelState": "Ringing"},
        {"Response": "Success", "ActionID": "x", "Message": "Authentication accepted"},
        {},
    ],
)
def test_events_the_dialer_does_not_use_map_to_none(event: dict[str, str]) -> None:
    assert to_record(event, AT) is None


@given(
    name=st.sampled_from(sorted(WANTED)),
    headers=st.dictionaries(
        st.sampled_from(
            ["Uniqueid", "ActionID", "Response", "Reason", "ChannelState", "Cause", "Cause-txt", "Queue",
             "Interface", "Location", "Status", "Paused", "InCall", "TalkTime", "UserEvent", "Attempt", "Channel"]
        ),
        st.text(max_size=12),
    ),
)
def test_any_header_values_give_a_record_or_none_never_an_error(name: str, headers: dict[str, str]) -> None:
    record = to_record({"Event": name, **headers}, AT)
    assert record is None or record.at == AT


@pytest.mark.parametrize("path", sorted(AMI_FIXTURES.glob("*.txt")), ids=lambda p: p.stem)
def test_every_recorded_event_maps_cleanly(path: Path, ami_story) -> None:
    seen: Counter[str] = Counter()
    for event, at in ami_story(path.name):
        record = to_record(event, at)
        if event["Event"].lower() in WANTED and not (
            event["Event"] == "UserEvent" and event.get("UserEvent") != "DialerAbandoned"
        ) and not (event["Event"] == "SoftHangupRequest" and event.get("Cause") != "4"):  # only a shutdown's
            assert record is not None, f"{path.name}: {event['Event']} at {at} was dropped"
            assert record.at == at
            seen[type(record).__name__] += 1
        else:
            assert record is None, f"{path.name}: {event['Event']} should be dropped"
    # Every call story shows its channel being made, its end, and the Originate's result.
    assert seen["ChannelCreated"] >= 1
    assert seen["ChannelHangup"] >= 1
    assert seen["OriginateResult"] >= 1


def test_the_bridged_story_yields_the_queue_records_keyed_by_the_customer_channel(ami_story) -> None:
    records = [rec for event, at in ami_story("answered-bridged.txt") if (rec := to_record(event, at))]
    queue_records = [rec for rec in records if isinstance(rec, (r.QueueJoined, r.AgentRinging, r.AgentConnected,
                                                                 r.AgentCompleted))]
    assert [type(rec).__name__ for rec in queue_records] == [
        "QueueJoined", "AgentRinging", "AgentConnected", "AgentCompleted"
    ]
    assert {rec.uniqueid for rec in queue_records} == {ATTEMPT}
    completed = queue_records[-1]
    assert isinstance(completed, r.AgentCompleted)
    assert completed.talk_time == 42.0
    assert completed.interface == "PJSIP/agent1"


def test_the_shipped_manager_conf_lets_through_every_event_the_daemon_asks_for() -> None:
    conf = (Path(__file__).parents[2] / "asterisk-conf" / "manager.conf").read_text()
    filtered = re.findall(r"^eventfilter\(action\(include\),name\(([A-Za-z]+)\)\) =\s*$", conf, re.MULTILINE)
    assert set(SUBSCRIBED) <= set(filtered), set(SUBSCRIBED) - set(filtered)
    assert {name.lower() for name in SUBSCRIBED} | {"queuemember"} == WANTED
