"""The reference dialers of the pacing benchmark (issue 16): same customers, same draws."""

import pytest

from dialer.core.abandon import AbandonState
from dialer.core.pacing import PacingMode
from dialer.simulation import Scenario, simulate
from dialer.simulation.reference_policies import (
    AdaptiveDialLevel,
    ProbabilityModel,
    View,
    progressive,
    simulate_reference,
    vicidial_grid,
)


def _scenario(agents: int, answer: float, talk: float, seed: int = 1) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "ref",
            "seed": seed,
            "hours": 0.5,
            "agents": agents,
            "customers": {
                "live_answer": answer,
                "busy": 0.1,
                "ring_timeout": 25,
                "time_to_answer": {"kind": "lognormal", "mean": 8, "cv": 0.5},
            },
            "talk": {"kind": "lognormal", "mean": talk, "cv": 0.8},
            "wrapup": 10,
            "pacing": {"mode": "predictive", "abandon_target": 0.02},
        }
    )


@pytest.mark.parametrize(("agents", "answer", "talk", "seed"), [(5, 0.15, 60.0, 1), (20, 0.3, 180.0, 2)])
def test_the_progressive_reference_is_the_simulators_progressive_run(
    agents: int, answer: float, talk: float, seed: int
) -> None:
    # Same scenario, same seed, same order of draws: the reference loop is the simulator's
    # world, so a reference beats ours only by its decisions.
    scenario = _scenario(agents, answer, talk, seed)
    ours = simulate(scenario, PacingMode.progressive)
    ref = simulate_reference(scenario, progressive, "progressive")
    for field in ("occupancy", "first_hour_occupancy", "attempts", "live_answered", "connects", "abandoned"):
        assert getattr(ref, field) == getattr(ours, field), field
    assert ref.abandoned == 0


def _view(**changes: object) -> View:
    values: dict[str, object] = {
        "now": 100.0,
        "agents": 10,
        "free": 2,
        "busy_elapsed": (30.0,) * 8,
        "ringing": 3,
        "waiting": 0,
        "lines": 11,
        "abandon": AbandonState(answered=500, abandoned=5),
        "attempts": 2000,
        "live": 300,
        "finished_calls": 290,
        "mean_busy": 70.0,
    }
    values.update(changes)
    return View(**values)  # type: ignore[arg-type]


def test_the_adaptive_loop_raises_its_level_when_under_aim_and_lowers_it_when_over() -> None:
    loop = AdaptiveDialLevel(step=0.5, interval=10.0, aim=0.02)
    loop(_view(now=0.0))
    assert loop.level == 1.5  # 1 % abandons, agents idle: dial harder
    loop(_view(now=5.0))
    assert loop.level == 1.5  # not yet time to adjust
    loop(_view(now=10.0, abandon=AbandonState(answered=500, abandoned=15)))
    assert loop.level == 1.0  # 3 %: back down, never under one line per agent
    loop(_view(now=20.0, abandon=AbandonState(answered=500, abandoned=15)))
    assert loop.level == 1.0
    # With the budget spent it dials progressively, as every dialer must.
    assert loop(_view(now=21.0, abandon=AbandonState(answered=10, abandoned=1))) == progressive(_view())


def test_the_probability_model_dials_more_with_a_thinner_margin_and_never_under_progressive() -> None:
    counts = [ProbabilityModel(z=z)(_view()) for z in (3.0, 1.0, 0.0)]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0] >= progressive(_view())
    # Before it has measured anything it is progressive.
    assert ProbabilityModel()(_view(attempts=10, live=2)) == progressive(_view())


def test_the_vicidial_grid_has_about_sixty_settings() -> None:
    grid = vicidial_grid((0.01, 0.015, 0.02))
    assert len(grid) == 60
    assert len({g.label() for g in grid}) == 60
