"""`dialer simulate SCENARIO.yaml [--json] [--baselines]`: run the pacing on a virtual clock."""

from __future__ import annotations

import argparse
import json
import sys

from dialer.core.pacing import PacingMode
from dialer.simulation import ScenarioError, SimulationResult, format_table, load_scenario, simulate


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a campaign's pacing (agents, customers, lines) on a virtual clock",
        description=(
            "Run a discrete-event simulation of the scenario with the daemon's own pacing code "
            "and print occupancy, abandon rate, connects per agent-hour, mean agent wait and "
            "lines used."
        ),
    )
    parser.add_argument("scenario", metavar="SCENARIO.yaml", help="scenario file")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also run progressive and ratio pacing on the same scenario (besides any listed in it)",
    )
    parser.add_argument("--mode", choices=[m.value for m in PacingMode], help="override the scenario's pacing mode")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--hours", type=float, help="override the simulated duration")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"dialer simulate: invalid scenario\n{exc}", file=sys.stderr)
        return 2
    updates: dict[str, object] = {}
    if args.seed is not None:
        updates["seed"] = args.seed
    if args.hours is not None:
        if args.hours <= 0:
            print("dialer simulate: --hours must be positive", file=sys.stderr)
            return 2
        updates["hours"] = args.hours
    if updates:
        scenario = scenario.model_copy(update=updates)
    main_mode = PacingMode(args.mode) if args.mode else scenario.pacing.mode

    modes = [main_mode]
    extra = list(scenario.baselines)
    if args.baselines:
        extra += [PacingMode.progressive, PacingMode.ratio]
    for mode in extra:
        if mode not in modes:
            modes.append(mode)

    results: list[SimulationResult] = [simulate(scenario, mode) for mode in modes]
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(
            f"{scenario.name}: {scenario.agents} agents, {scenario.hours:g} h simulated, seed {scenario.seed}, "
            f"abandon limit {scenario.pacing.abandon_limit:.1%}"
        )
        print(format_table(results))
    return 0
