"""`dialer.core.agents.AgentBoard`: who can take a call, per queue, from queue records."""

from __future__ import annotations

from dialer.ami.events import to_record
from dialer.core import records as r
from dialer.core.agents import AgentBoard

T0 = 1732350000.0
CALL = "1a2b3c4d5e6f40718293a4b5c6d7e8f9"


def member(interface: str, queue: str = "sales", status: int = 1, paused: bool = False, in_call: bool = False,
           at: float = T0) -> r.MemberStatus:
    return r.MemberStatus(at=at, queue=queue, interface=interface, status=status, paused=paused, in_call=in_call)


def board_with_logged_in_agents() -> AgentBoard:
    board = AgentBoard({"alice": "PJSIP/agent1", "bob": "PJSIP/agent2", "carol": "PJSIP/agent3"})
    board.apply(member("PJSIP/agent1", "sales"))
    board.apply(member("PJSIP/agent1", "gold"))
    board.apply(member("PJSIP/agent2", "sales"))
    board.apply(member("PJSIP/agent3", "gold"))
    return board


def test_nobody_is_free_before_any_queue_status() -> None:
    board = AgentBoard({"alice": "PJSIP/agent1"})
    assert board.free_in("sales") == 0
    assert board.in_queue("sales") == []
    assert board.agent("PJSIP/agent1").label == "logged_out"


def test_free_agents_are_counted_per_queue() -> None:
    board = board_with_logged_in_agents()
    assert board.free_in("sales") == 2
    assert board.free_in("gold") == 2
    assert board.free_in("support") == 0
    assert sorted(a.id for a in board.in_queue("gold")) == ["alice", "carol"]


def test_a_ringing_agent_is_not_free_in_any_of_its_queues_until_the_ring_ends() -> None:
    board = board_with_logged_in_agents()
    touched = board.apply(r.AgentRinging(uniqueid=CALL, at=T0 + 1, queue="sales", interface="PJSIP/agent1"))
    assert touched is not None and touched.id == "alice"
    assert touched.label == "ringing"
    assert board.free_in("sales") == 1
    assert board.free_in("gold") == 1
    # AgentRingNoAnswer arrives as AgentCompleted for the ringing call.
    board.apply(r.AgentCompleted(uniqueid=CALL, at=T0 + 16, queue="sales", interface="PJSIP/agent1", talk_time=None))
    assert board.free_in("sales") == 2
    assert board.agent("PJSIP/agent1").label == "free"


def test_ring_ended_frees_every_phone_ringing_for_that_call() -> None:
    board = board_with_logged_in_agents()
    board.apply(r.AgentRinging(uniqueid=CALL, at=T0 + 1, queue="sales", interface="PJSIP/agent1"))
    board.apply(r.AgentRinging(uniqueid=CALL, at=T0 + 1, queue="sales", interface="PJSIP/agent2"))
    board.apply(r.AgentRinging(uniqueid="other", at=T0 + 1, queue="gold", interface="PJSIP/agent3"))
    assert board.free_in("sales") == 0
    board.ring_ended(CALL)
    assert board.free_in("sales") == 2
    assert board.agent("PJSIP/agent3").ringing_for == "other"


def test_an_agent_on_a_call_is_busy_until_the_call_completes() -> None:
    board = board_with_logged_in_agents()
    board.apply(r.AgentRinging(uniqueid=CALL, at=T0 + 1, queue="sales", interface="PJSIP/agent2"))
    agent = board.apply(r.AgentConnected(uniqueid=CALL, at=T0 + 2, queue="sales", interface="PJSIP/agent2"))
    assert agent is not None
    assert (agent.on_call, agent.ringing_for, agent.busy_since, agent.label) == (CALL, None, T0 + 2, "talking")
    assert board.free_in("sales") == 1
    # The end of another call must not free this agent.
    board.apply(r.AgentCompleted(uniqueid="other", at=T0 + 5, queue="sales", interface="PJSIP/agent2", talk_time=3))
    assert agent.on_call == CALL
    board.apply(r.AgentCompleted(uniqueid=CALL, at=T0 + 40, queue="sales", interface="PJSIP/agent2", talk_time=38))
    assert (agent.on_call, agent.busy_since) == (None, None)
    assert board.free_in("sales") == 2


def test_device_in_use_is_busy_and_idle_again_clears_a_call_we_missed_the_end_of() -> None:
    board = board_with_logged_in_agents()
    board.apply(r.AgentConnected(uniqueid=CALL, at=T0 + 2, queue="sales", interface="PJSIP/agent2"))
    board.apply(member("PJSIP/agent2", status=2, in_call=True, at=T0 + 2.1))
    agent = board.agent("PJSIP/agent2")
    assert agent.on_call == CALL
    assert board.free_in("sales") == 1
    board.apply(member("PJSIP/agent2", status=1, in_call=False, at=T0 + 60))
    assert (agent.on_call, agent.label) == (None, "free")
    assert board.free_in("sales") == 2


def test_device_ringing_or_unavailable_is_not_free() -> None:
    board = board_with_logged_in_agents()
    board.apply(member("PJSIP/agent1", status=6))
    board.apply(member("PJSIP/agent2", status=5))
    assert board.free_in("sales") == 0
    assert board.agent("PJSIP/agent2").label == "busy"
    board.apply(member("PJSIP/agent2", status=0))  # unknown: a phone nobody qualifies
    assert board.free_in("sales") == 1


def test_a_paused_agent_is_not_free_until_unpaused() -> None:
    board = board_with_logged_in_agents()
    board.apply(member("PJSIP/agent2", paused=True))
    assert board.agent("PJSIP/agent2").label == "paused"
    assert board.free_in("sales") == 1
    board.apply(member("PJSIP/agent2", paused=False))
    assert board.free_in("sales") == 2


def test_member_removed_leaves_the_agent_in_its_other_queues() -> None:
    board = board_with_logged_in_agents()
    board.apply(r.MemberRemoved(at=T0 + 1, queue="sales", interface="PJSIP/agent1"))
    assert board.free_in("sales") == 1
    assert board.free_in("gold") == 2
    board.apply(r.MemberRemoved(at=T0 + 2, queue="gold", interface="PJSIP/agent1"))
    assert board.agent("PJSIP/agent1").label == "logged_out"
    assert not board.agent("PJSIP/agent1").free


def test_unknown_interfaces_are_ignored() -> None:
    board = board_with_logged_in_agents()
    before = [(a.id, sorted(a.queues), a.paused, a.on_call) for a in board.agents()]
    assert board.apply(member("PJSIP/stranger")) is None
    assert board.apply(r.AgentConnected(uniqueid=CALL, at=T0, queue="sales", interface="PJSIP/stranger")) is None
    assert board.apply(r.MemberRemoved(at=T0, queue="sales", interface="Local/agent1@agents")) is None
    assert [(a.id, sorted(a.queues), a.paused, a.on_call) for a in board.agents()] == before
    assert board.agent("PJSIP/stranger") is None


def test_interfaces_match_ignoring_case() -> None:
    board = AgentBoard({"alice": "PJSIP/Agent1"})
    touched = board.apply(member("pjsip/AGENT1"))
    assert touched is not None and touched.id == "alice"
    assert touched.interface == "PJSIP/Agent1"
    assert board.free_in("sales") == 1
    board.apply(r.AgentConnected(uniqueid=CALL, at=T0, queue="sales", interface="PJSIP/AGENT1"))
    assert board.agent("pjsip/agent1").on_call == CALL


def test_logged_out_all_forgets_queue_membership_after_a_reconnect() -> None:
    board = board_with_logged_in_agents()
    board.logged_out_all()
    assert board.free_in("sales") == 0
    assert board.free_in("gold") == 0
    assert {a.label for a in board.agents()} == {"logged_out"}


def test_queue_status_list_entries_log_agents_in() -> None:
    board = AgentBoard({"alice": "PJSIP/agent1"})
    record = to_record(
        {"Event": "QueueMember", "Queue": "sales", "Name": "Alice", "Location": "PJSIP/agent1",
         "StateInterface": "PJSIP/agent1", "Membership": "dynamic", "Penalty": "0", "CallsTaken": "3",
         "Status": "1", "Paused": "0", "InCall": "0", "ActionID": "action/x/1/4"},
        T0,
    )
    assert isinstance(record, r.MemberStatus)
    board.apply(record)
    assert board.free_in("sales") == 1
