"""How fast `dialer simulate` runs now that it drives the daemon's campaign core.

Runs one cell of the pacing grid (default 20 agents, 30 % live answer, 60 s talk, 2 h)
for a few seeds in both modes and prints the events and calls simulated per second of CPU.

    .venv/bin/python benchmarks/simulation_speed.py
    .venv/bin/python benchmarks/simulation_speed.py --agents 100 --hours 1 --seeds 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pacing_grid import grid_scenario  # noqa: E402

from dialer.core.pacing import PacingMode  # noqa: E402
from dialer.simulation import load_scenario, simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "benchmarks/scenarios/standard.yaml")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--answer", type=float, default=0.3)
    parser.add_argument("--talk", type=float, default=60.0)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    base = load_scenario(args.scenario)
    events = calls = 0
    cpu = 0.0
    for mode in (PacingMode.predictive, PacingMode.progressive):
        for seed in range(1, args.seeds + 1):
            scenario = grid_scenario(base, args.agents, args.answer, args.talk, args.hours)
            scenario = scenario.model_copy(update={"seed": seed})
            started = time.process_time()
            result = simulate(scenario, mode)
            spent = time.process_time() - started
            events, calls, cpu = events + result.events, calls + result.attempts, cpu + spent
            print(
                f"{mode.value:>11} seed {seed}: occupancy {result.occupancy:.3f}  abandon "
                f"{result.abandon_rate:.2%}  {result.attempts} calls  {spent:.2f} s CPU"
            )
    print(f"{events / cpu:.0f} events and {calls / cpu:.0f} calls simulated per second of CPU ({cpu:.2f} s)")


if __name__ == "__main__":
    main()
