import pytest

from dialer.sandbox.events import (
    AgentEvent,
    CarrierEvent,
    EventLogError,
    parse_agent_log,
    parse_carrier_log,
    read_agent_events,
    read_carrier_events,
)
from dialer.sandbox.ports import SandboxPorts
from dialer.sandbox.state import AgentPhone, AmiAccess, SandboxState

# Lines as SIPp wrote them in a sandbox run.
CARRIER_LOG = """\
invite 2010000002 fc1eeb53-0fd5@x
ringing 2010000002 fc1eeb53-0fd5@x
final 2010000002 486 fc1eeb53-0fd5@x
invite 1000020010 42ec9da6
answered 1000020010 42ec9da6
bye_sent 1000020010 42ec9da6
cancelled 3000000003 ab9f5f80
bye_received 1000050011 001c91fa
"""

AGENT_LOG = """\
invite agent1 c5541808 att-1000020010
answered agent1 c5541808
bye_received agent1 c5541808
invite agent2 d00d
cancelled agent2 d00d
"""


def test_carrier_log() -> None:
    events = parse_carrier_log(CARRIER_LOG)
    assert events[0] == CarrierEvent("invite", "2010000002", "fc1eeb53-0fd5@x")
    assert events[2] == CarrierEvent("final", "2010000002", "fc1eeb53-0fd5@x", status=486)
    assert [e.event for e in events] == [
        "invite", "ringing", "final", "invite", "answered", "bye_sent", "cancelled", "bye_received",
    ]  # fmt: skip


def test_agent_log_with_and_without_attempt_header() -> None:
    events = parse_agent_log(AGENT_LOG)
    assert events[0] == AgentEvent("invite", "agent1", "c5541808", attempt="att-1000020010")
    assert events[3] == AgentEvent("invite", "agent2", "d00d", attempt=None)
    assert events[4].event == "cancelled"


def test_sipp_timestamps_give_each_event_its_time() -> None:
    stamp = "2026-11-30\t12:55:58.292209\t1796043358.292209"
    carrier = parse_carrier_log(
        f"invite 2010000002 fc1e@x {stamp}\nfinal 2010000002 486 fc1e@x {stamp}\ndtmf 7 4 c {stamp}\n"
    )
    assert carrier[0] == CarrierEvent("invite", "2010000002", "fc1e@x")
    assert carrier[0].at == 1796043358.292209
    assert carrier[1].status == 486 and carrier[1].at == carrier[0].at
    assert carrier[2].key == "4"
    agents = parse_agent_log(f"invite agent1 c5 att-1 {stamp}\ninvite agent2 d0  {stamp}\nanswered agent1 c5 {stamp}\n")
    assert [(a.attempt, a.at) for a in agents] == [("att-1", 1796043358.292209), (None, 1796043358.292209)] + [
        (None, 1796043358.292209)
    ]
    # Lines from a scenario without timestamps still parse, with no time.
    assert parse_carrier_log("invite 1 a\n")[0].at is None


def test_a_half_written_last_line_is_not_read_yet() -> None:
    events = parse_carrier_log("invite 1 a\nfinal 1 48")
    assert events == [CarrierEvent("invite", "1", "a")]
    assert parse_agent_log("invite agent1 c") == []


@pytest.mark.parametrize(
    "line", ["hello 1 a", "final 1 abc a", "final 1 486", "invite 1", "answered 1 a b", ""]
)
def test_malformed_carrier_lines_are_errors(line: str) -> None:
    if not line:
        assert parse_carrier_log("\n\n") == []
        return
    with pytest.raises(EventLogError, match="line 1"):
        parse_carrier_log(line + "\n")


@pytest.mark.parametrize("line", ["ring agent1 a", "invite agent1", "invite agent1 a b c", "answered agent1 a b"])
def test_malformed_agent_lines_are_errors(line: str) -> None:
    with pytest.raises(EventLogError):
        parse_agent_log(line + "\n")


def _state(tmp_path) -> SandboxState:  # type: ignore[no-untyped-def]
    return SandboxState(
        instance="t", workdir=str(tmp_path), root="/r", instance_dir="/r/srv", ports=SandboxPorts(),
        ami=AmiAccess("127.0.0.1", 5038, "dialer", "s"), agents=[AgentPhone("agent1", "PJSIP/agent1")],
        pids={}, carrier_trunk="PJSIP/{number}@carrier", carrier_events=str(tmp_path / "c.log"),
        agent_events=str(tmp_path / "a.log"), asterisk_log="", asterisk_output="", carrier_output="",
        agents_output="", started_at=0.0,
    )  # fmt: skip


def test_read_events_from_the_files_in_the_state(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = _state(tmp_path)
    assert read_carrier_events(state) == [] and read_agent_events(state) == []  # not written yet
    (tmp_path / "c.log").write_text(CARRIER_LOG)
    (tmp_path / "a.log").write_text(AGENT_LOG)
    assert len(read_carrier_events(state)) == 8
    assert read_agent_events(state)[0].attempt == "att-1000020010"
