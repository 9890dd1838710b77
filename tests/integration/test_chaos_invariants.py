"""The chaos run's checks can fail: each is fed a synthetic SIPp log with the fault it
must catch (a double INVITE, a do-not-call number dialed, a too-fast burst...), and a
clean one it must pass."""

from __future__ import annotations

from dialer.sandbox.events import parse_agent_log, parse_carrier_log
from tests.integration.chaos.fault_plan import KINDS, plan
from tests.integration.chaos.invariants import (
    carrier_calls,
    check_abandon_rate,
    check_cps,
    check_daemon_up,
    check_final_rows,
    check_forbidden_dials,
    check_hostile_api,
    check_no_fault_closes,
    check_retry_spacing,
    judge,
    link_agents,
)
from tests.integration.chaos.run_record import (
    ApiCall,
    AttemptRow,
    DaemonLife,
    FaultEvent,
    HealthSample,
    LeadRow,
    NumberPlan,
    RetryRule,
    RunRecord,
)

T0 = 1_800_000_000.0
BUSY = "2010000001"
ANSWER = "1010050002"
REJECT = "4010000003"
LISTED = "1010030004"


def stamp(offset: float) -> str:
    return f"2027-01-15\t08:00:00.000000\t{T0 + offset:.6f}"


def sipp(*lines: tuple[float, str]) -> str:
    return "".join(f"{text} {stamp(at)}\n" for at, text in lines)


def run_record(**overrides: object) -> RunRecord:
    numbers = NumberPlan()
    for number in (BUSY, ANSWER, REJECT, LISTED):
        numbers.allow(number, "chaos")
    numbers.forbid(LISTED, "on the do-not-call list")
    values: dict[str, object] = dict(
        seed=1,
        started_at=T0,
        ended_at=T0 + 300,
        numbers=numbers,
        retry_rules={"chaos": {"busy": RetryRule(18.0, 3), "interrupted": RetryRule(9.0, 4)}},
        ring_timeout_s=5,
        cps_limit=4.0,
        cps_source="test",
        abandon_limit=0.03,
        history_answered=0,
    )
    values.update(overrides)
    return RunRecord(**values)  # type: ignore[arg-type]


BUSY_TWICE = [(0.0, f"invite {BUSY} c1"), (1.0, f"final {BUSY} 486 c1")]


def test_a_second_invite_inside_the_retry_delay_is_caught() -> None:
    too_soon = sipp(*BUSY_TWICE, (10.0, f"invite {BUSY} c2"), (11.0, f"final {BUSY} 486 c2"))
    verdict = check_retry_spacing(carrier_calls(parse_carrier_log(too_soon), T0), run_record())
    assert not verdict.ok
    assert "second INVITE 9.0s after the previous call ended busy; retry delay 18s" in verdict.violations[0]

    in_time = sipp(*BUSY_TWICE, (19.5, f"invite {BUSY} c2"), (20.0, f"final {BUSY} 486 c2"))
    assert check_retry_spacing(carrier_calls(parse_carrier_log(in_time), T0), run_record()).ok


def test_a_redial_after_a_closing_outcome_is_caught_unless_a_fault_ended_the_call() -> None:
    log = sipp((0.0, f"invite {REJECT} c1"), (1.0, f"final {REJECT} 603 c1"), (60.0, f"invite {REJECT} c2"))
    calls = carrier_calls(parse_carrier_log(log), T0)
    assert "no retry rule" in check_retry_spacing(calls, run_record()).violations[0]
    # The same call ended while the daemon was blind: retried as interrupted, after 9 s.
    assert check_retry_spacing(calls, run_record(blind=[(0.5, 30.0)])).ok is False  # span in wrong clock
    assert check_retry_spacing(calls, run_record(blind=[(T0 + 0.5, T0 + 30.0)])).ok


def test_a_do_not_call_number_dialed_and_an_unknown_number_are_caught() -> None:
    log = sipp((0.0, f"invite {LISTED} c1"), (1.0, "invite 6666666666 c2"), (2.0, f"invite {ANSWER} c3"))
    verdict = check_forbidden_dials(carrier_calls(parse_carrier_log(log), T0), run_record())
    assert verdict.violations == [
        f"{LISTED} dialed (on the do-not-call list)",
        "6666666666 dialed, and it is no lead of the run",
    ]


def test_a_number_listed_mid_run_may_only_be_dialed_before() -> None:
    record = run_record()
    record.numbers.forbid(ANSWER, "listed mid-run", since=T0 + 50)
    before = sipp((49.0, f"invite {ANSWER} c1"))
    after = sipp((53.0, f"invite {ANSWER} c1"))
    assert check_forbidden_dials(carrier_calls(parse_carrier_log(before), T0), record).ok
    assert not check_forbidden_dials(carrier_calls(parse_carrier_log(after), T0), record).ok


def test_a_burst_over_the_trunk_cps_is_caught() -> None:
    spaced = sipp(*[(i * 0.25, f"invite {BUSY} c{i}") for i in range(40)])
    verdict = check_cps(carrier_calls(parse_carrier_log(spaced), T0), run_record())
    assert verdict.ok, verdict
    assert verdict.figures["max_in_1s"] == 4
    burst = sipp(*[(10 + i * 0.01, f"invite {BUSY} b{i}") for i in range(12)])
    verdict = check_cps(carrier_calls(parse_carrier_log(burst), T0), run_record())
    assert not verdict.ok and "12 INVITEs within 1 s" in verdict.violations[0]


def test_a_lead_closed_by_a_fault_is_caught() -> None:
    leads = [
        LeadRow(1, "chaos", ANSWER, "done", 1, "failed", "failed"),  # cause 0 after a restart
        LeadRow(2, "chaos", BUSY, "done", 3, "busy", "max_attempts_busy"),
        LeadRow(3, "chaos", REJECT, "done", 1, "rejected", "rejected"),
        LeadRow(4, "chaos", BUSY, "done", 1, "interrupted", "max_attempts_interrupted"),
    ]
    verdict = check_no_fault_closes(leads, [], run_record(), {"chaos"})
    assert [v.split(" closed")[0] for v in verdict.violations] == [f"lead 1 {ANSWER} (answer customer)"]


def test_a_conversation_cut_by_a_restart_and_closed_as_answered_is_caught() -> None:
    log = sipp((0.0, f"invite {ANSWER} c1"), (1.0, f"answered {ANSWER} c1"), (3.0, f"bye_received {ANSWER} c1"))
    calls = carrier_calls(parse_carrier_log(log), T0)
    record = run_record(faults=[FaultEvent("restart_asterisk", T0 + 2.8, T0 + 8.0)])
    lead = [LeadRow(1, "chaos", ANSWER, "done", 1, "answered", "answered")]
    assert "cut by an Asterisk restart" in check_no_fault_closes(lead, calls, record, {"chaos"}).violations[0]
    assert check_no_fault_closes(lead, calls, run_record(), {"chaos"}).ok


def test_attempts_without_a_final_row_and_invites_without_an_attempt_are_caught() -> None:
    calls = carrier_calls(parse_carrier_log(sipp((0.0, f"invite {BUSY} c1"), (30.0, f"invite {BUSY} c2"))), T0)
    attempts = [
        AttemptRow("a1", "chaos", BUSY, "ended", "busy", T0, T0 + 1),
        AttemptRow("a2", "chaos", ANSWER, "ringing", None, T0, None),
    ]
    leads = [LeadRow(1, "chaos", ANSWER, "leased", 1, None, None)]
    verdict = check_final_rows(attempts, leads, calls)
    assert len(verdict.violations) == 3, verdict.violations


def test_an_outage_no_kill_explains_and_a_daemon_that_died_are_caught() -> None:
    daemons = [
        DaemonLife(1, T0, "d1.log", ended_at=T0 + 20, exit_code=-9, ended_by="kill_daemon"),
        DaemonLife(2, T0 + 21, "d2.log", ended_at=T0 + 60, exit_code=1, ended_by=None, last_error="RuntimeError"),
        DaemonLife(3, T0 + 61, "d3.log"),
    ]
    health = [HealthSample(T0 + t, ok) for t, ok in [(5, True), (20.5, False), (25, True), (50, False), (55, True)]]
    verdict = check_daemon_up(run_record(daemons=daemons, health=health))
    assert len(verdict.violations) == 2, verdict.violations
    assert "+50.0s" in verdict.violations[0] and "exited by itself" in verdict.violations[1]


def test_an_abandon_rate_over_the_limit_is_caught() -> None:
    lines = []
    agents = []
    for i in range(10):
        number = f"10100500{i:02d}"
        lines += [(i * 10.0, f"invite {number} c{i}"), (i * 10 + 1, f"answered {number} c{i}")]
        lines.append((i * 10 + 6, f"bye_sent {number} c{i}"))
        if i:  # the first customer never reached an agent
            agents += [f"invite agent1 g{i} att{i} {stamp(i * 10 + 1.2)}", f"answered agent1 g{i} {stamp(i * 10 + 1.3)}"]
    record = run_record()
    for i in range(10):
        record.numbers.allow(f"10100500{i:02d}", "chaos")
    calls = carrier_calls(parse_carrier_log(sipp(*lines)), T0)
    unmatched = link_agents(calls, parse_agent_log("\n".join(agents) + "\n"), {f"att{i}": f"10100500{i:02d}" for i in range(10)})
    verdict = check_abandon_rate(calls, record, unmatched)
    assert not verdict.ok and verdict.figures["abandoned"] == 1 and verdict.figures["reached_agent"] == 9
    # With enough live answers before the run in the window, one abandon is within 3 %.
    assert check_abandon_rate(calls, run_record(history_answered=40), unmatched).ok


def test_a_server_error_and_a_leaked_secret_are_caught() -> None:
    record = run_record(api=[ApiCall("ok", T0, 422, 0.1), ApiCall("boom", T0, 500, 0.1, "Internal Server Error")])
    record.leaked.append("GET /status")
    assert len(check_hostile_api(record).violations) == 2


def test_a_clean_run_passes_every_check() -> None:
    log = sipp(*BUSY_TWICE, (20.0, f"invite {BUSY} c2"), (21.0, f"final {BUSY} 486 c2"))
    attempts = [AttemptRow(f"a{i}", "chaos", BUSY, "ended", "busy", T0, T0 + 1) for i in range(2)]
    leads = [LeadRow(1, "chaos", BUSY, "done", 2, "busy", "max_attempts_busy")]
    record = run_record(daemons=[DaemonLife(1, T0, "d.log")], health=[HealthSample(T0 + 3, True)])
    verdicts = judge(record, parse_carrier_log(log), [], attempts, leads, {"chaos"})
    assert all(v.ok for v in verdicts), [(v.name, v.violations) for v in verdicts if not v.ok]


def test_the_fault_plan_strikes_every_kind_and_replays_by_seed() -> None:
    first = plan(11, 110)
    assert {p.kind for p in first} >= set(KINDS)
    assert first == plan(11, 110) and first != plan(12, 110)
    restart = min(p.at for p in first if p.kind == "restart_asterisk")
    assert any(p.kind == "kill_daemon" and 0 < p.at - restart < 2 for p in first)
