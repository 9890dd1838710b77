import argparse
import json
import random
import textwrap
from pathlib import Path

import pytest

from dialer.cli import simulate as simulate_cli
from dialer.core.pacing import PacingMode
from dialer.simulation import Scenario, ScenarioError, format_table, load_scenario, simulate
from dialer.simulation.scenario import Constant, Empirical, LogNormal

ROOT = Path(__file__).resolve().parents[2]
STANDARD = ROOT / "benchmarks" / "scenarios" / "standard.yaml"


def standard(**updates: object) -> Scenario:
    scenario = load_scenario(STANDARD)
    talk = updates.pop("talk_mean", None)
    if talk is not None:
        updates["talk"] = scenario.talk.model_copy(update={"mean": talk})
    return scenario.model_copy(update=updates)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    return path


SMALL = """\
name: small
seed: 3
hours: 0.5
agents: 4
customers:
  live_answer: 0.5
  busy: 0.1
  time_to_answer: {kind: lognormal, mean: 6, cv: 0.5}
talk: {kind: empirical, values: [20, 40, 60]}
wrapup: 5
"""


def test_standard_scenario_is_the_issues_model() -> None:
    s = load_scenario(STANDARD)
    assert (s.agents, s.hours, s.grace, s.tick) == (20, 8.0, 2.0, 0.5)
    assert (s.customers.live_answer, s.customers.busy, s.customers.ring_timeout) == (0.30, 0.10, 25.0)
    assert s.customers.time_to_answer == LogNormal(kind="lognormal", mean=8, cv=0.5)
    assert s.customers.busy_after == Constant(value=3)
    assert s.talk == LogNormal(kind="lognormal", mean=180, cv=0.8)
    assert s.wrapup == Constant(value=10)
    assert s.pacing.abandon_limit == 0.03


def test_samplers_have_the_asked_mean() -> None:
    rng = random.Random(1)
    draw = LogNormal(kind="lognormal", mean=8, cv=0.5).sampler(rng)
    values = [draw() for _ in range(20000)]
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert mean == pytest.approx(8, rel=0.03)
    assert sd / mean == pytest.approx(0.5, rel=0.05)
    empirical = Empirical(kind="empirical", values=[1, 2]).sampler(rng)
    assert {empirical() for _ in range(100)} == {1, 2}


def test_a_run_is_determined_by_its_seed(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SMALL))
    first, second = simulate(scenario), simulate(scenario)
    assert first.as_dict() | {"wall_seconds": 0} == second.as_dict() | {"wall_seconds": 0}
    other = simulate(scenario.model_copy(update={"seed": 4}))
    assert other.attempts != first.attempts or other.occupancy != first.occupancy


def test_accounting_is_consistent(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SMALL))
    r = simulate(scenario, PacingMode.ratio)
    assert r.live_answered == r.connects + r.abandoned
    assert r.attempts >= r.live_answered
    assert 0.0 <= r.occupancy <= 1.0
    assert r.peak_lines >= r.mean_lines


def test_no_agents_no_calls(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SMALL)).model_copy(update={"agents": 0})
    for mode in PacingMode:
        r = simulate(scenario, mode)
        assert (r.attempts, r.occupancy) == (0, 0.0)


def test_progressive_matches_the_standard_model_and_never_abandons() -> None:
    # Expected: talk+wrap / (talk+wrap + idle), idle = 7/3 failed attempts of 21.9 s + 8 s
    # to answer, about 59 s: 70 / 129 = 0.54 for 60 s talk.
    r = simulate(standard(hours=2.0, talk_mean=60.0), PacingMode.progressive)
    assert r.occupancy == pytest.approx(0.54, abs=0.03)
    assert r.abandoned == 0
    assert r.mean_agent_wait == pytest.approx(59, abs=6)


def test_predictive_beats_progressive_under_the_abandon_limit() -> None:
    scenario = standard(hours=2.0, talk_mean=60.0)
    progressive = simulate(scenario, PacingMode.progressive)
    predictive = simulate(scenario, PacingMode.predictive)
    assert predictive.occupancy > progressive.occupancy + 0.2
    assert predictive.abandon_rate <= 0.03


def test_ratio_is_held_at_the_ceiling_when_it_overdials(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SMALL)).model_copy(update={"hours": 2.0, "agents": 10})
    scenario = scenario.model_copy(update={"pacing": scenario.pacing.model_copy(update={"ratio": 4.0})})
    held = simulate(scenario, PacingMode.ratio)
    unlimited = scenario.pacing.model_copy(update={"abandon_limit": 1.0, "abandon_target": 0.5, "override_ceiling": True})
    free_running = simulate(scenario.model_copy(update={"pacing": unlimited}), PacingMode.ratio)
    assert free_running.abandon_rate > 0.2
    # Calls already ringing when the budget runs out can still abandon: a little over 3 %.
    assert 0.0 < held.abandon_rate <= 0.035


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("talk: {kind: lognormal, mean: -5, cv: 0.8}\n", r":10: talk\.mean: Input should be greater than 0"),
        ("talk: 60\ncolour: blue\n", r":11: colour: Extra inputs are not permitted"),
        ("talk: {kind: gamma, mean: 5}\n", r":10: talk: .*'constant', 'lognormal', 'empirical'"),
        ("talk: 60\npacing: {mode: predictive, abandon_limit: 0.05}\n", r":11: pacing: .*override_ceiling"),
    ],
)
def test_scenario_errors_name_file_line_and_field(tmp_path: Path, body: str, expected: str) -> None:
    text = SMALL.replace("talk: {kind: empirical, values: [20, 40, 60]}\nwrapup: 5\n", "") + "wrapup: 5\n" + body
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError, match=expected) as info:
        load_scenario(path)
    assert str(path) in str(info.value)


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="agents"):
        load_scenario(write(tmp_path, SMALL + "agents: 5\n"))


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dialer")
    subparsers = parser.add_subparsers(dest="command", required=True)
    simulate_cli.register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_prints_json_with_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, SMALL)
    assert _cli(["simulate", str(path), "--json", "--baselines", "--hours", "0.2"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in results] == ["predictive", "progressive", "ratio"]
    assert all(r["hours"] == 0.2 for r in results)


def test_cli_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, SMALL)
    assert _cli(["simulate", str(path), "--mode", "progressive"]) == 0
    out = capsys.readouterr().out
    assert "small: 4 agents" in out
    assert "occupancy" in out and "progressive" in out


def test_cli_reports_a_bad_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, SMALL.replace("agents: 4", "agents: many"))
    assert _cli(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: agents:" in err


def test_format_table_has_a_row_per_result(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SMALL)).model_copy(update={"hours": 0.1})
    table = format_table([simulate(scenario, m) for m in PacingMode])
    assert len(table.splitlines()) == 4


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_benchmark_scenarios_load(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.customers.ring_timeout >= 15
    assert scenario.pacing.abandon_limit <= 0.03
