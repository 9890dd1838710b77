"""Our predictive pacing against the best known result for each grid cell (issue 16, item 3).

For every cell of the grid (benchmarks/pacing_grid.py) and seeds 1..N, on the same
scenarios and seeds (dialer/simulation/reference_policies.py):

- progressive;
- a VICIdial-style adaptive dial level, tuned over 60 settings (step x interval x aim),
  the best one kept per cell;
- a reference probability model (binomial answers against agents expected free) at its
  default margin, and tuned in hindsight (its margin swept, the best kept);
- ours (the product's predictive pacing, `dialer simulate`).

A setting is kept only if it stays under the rules as ours must: mean day abandon rate at
most 0.2 point over the target and, on every seed, the running rate after 100 live answers never over
the limit. Best known = the best kept reference; the goal is best + 1 point (cap 0.98),
never below progressive. Prints, per cell: each reference's occupancy / abandon / worst
running abandon, the best known, ours and the goal.

    nice -n 10 .venv/bin/python benchmarks/pacing_reference.py                  # 3 seeds, 4 h
    nice -n 10 .venv/bin/python benchmarks/pacing_reference.py --agents 5 20 --seeds 2 --hours 2

Writes the table as markdown to --out (default: docs/pacing-reference.md) and prints it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pacing_grid import AGENTS, ANSWER, TALK, grid_scenario  # noqa: E402

from dialer.core.pacing import PacingMode  # noqa: E402
from dialer.simulation import Scenario, load_scenario, simulate  # noqa: E402
from dialer.simulation.reference_policies import (  # noqa: E402
    MODEL_KNOB,
    ProbabilityModel,
    simulate_reference,
    vicidial_grid,
)

GOAL_CAP = 0.98
Figures = tuple[float, float, float, float]
"""Occupancy, abandon rate, worst running abandon rate, first-hour occupancy."""


def _figures(result: object) -> Figures:
    return (
        result.occupancy,  # type: ignore[attr-defined]
        result.abandon_rate,  # type: ignore[attr-defined]
        result.worst_running_abandon_rate,  # type: ignore[attr-defined]
        result.first_hour_occupancy,  # type: ignore[attr-defined]
    )


def _run_seed(job: tuple[Scenario, float]) -> dict[str, object]:
    """Every dialer on one cell and seed: {setting label: figures}, grouped by family."""
    scenario, target = job
    out: dict[str, object] = {"cell": scenario.name, "agents": scenario.agents, "seed": scenario.seed}
    out["progressive"] = {"": _figures(simulate(scenario, PacingMode.progressive))}
    out["ours"] = {"": _figures(simulate(scenario, PacingMode.predictive))}
    aims = (target / 2, target * 0.75, target)
    out["vicidial"] = {d.label(): _figures(simulate_reference(scenario, d, "vicidial")) for d in vicidial_grid(aims)}
    model: dict[str, Figures] = {}
    for z in MODEL_KNOB:
        decide = ProbabilityModel(z=z)
        model[decide.label()] = _figures(simulate_reference(scenario, decide, "model"))
    out["model"] = model
    return out


def _summary(runs: list[Figures]) -> tuple[float, float, float, float]:
    return (
        statistics.fmean(r[0] for r in runs),
        statistics.fmean(r[1] for r in runs),
        max(r[2] for r in runs),
        statistics.fmean(r[3] for r in runs),
    )


TOLERANCE = 0.002
"""Day abandon rate allowed over the target, for ours and the references alike: a feedback
loop aiming at 2 % lands within 1.9-2.2 % over a few seeds."""


def _kept(summary: tuple[float, ...], target: float, limit: float) -> bool:
    return summary[1] <= target + TOLERANCE + 1e-9 and summary[2] <= limit + 1e-9


def _best(settings: dict[str, list[Figures]], target: float, limit: float) -> tuple[str, tuple[float, ...]] | None:
    best: tuple[str, tuple[float, ...]] | None = None
    for label, runs in settings.items():
        s = _summary(runs)
        if _kept(s, target, limit) and (best is None or s[0] > best[1][0]):
            best = (label, s)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", type=Path, default=ROOT / "benchmarks/scenarios/standard.yaml")
    parser.add_argument("--hours", type=float, default=4.0, help="simulated hours per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N per cell")
    parser.add_argument("--target", type=float, default=0.02, help="abandon target (daemon default 2 %%)")
    parser.add_argument("--agents", type=int, nargs="*", default=list(AGENTS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cells", nargs="*", default=None, help="only these cells (e.g. 5a-30%%-180s)")
    parser.add_argument(
        "--leads",
        type=int,
        default=1_000_000,
        help="leads in each run's list, their count told to ours as the daemon does (0: told nothing)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs/pacing-reference.md")
    args = parser.parse_args(argv)

    base = load_scenario(args.scenario)
    base = base.model_copy(update={"pacing": base.pacing.model_copy(update={"abandon_target": args.target})})
    limit = base.pacing.abandon_limit
    jobs = []
    for agents, answer, talk in itertools.product(args.agents, ANSWER, TALK):
        for seed in range(1, args.seeds + 1):
            scenario = grid_scenario(base, agents, answer, talk, args.hours).model_copy(
                update={"seed": seed, "leads": args.leads or None}
            )
            if args.cells and scenario.name not in args.cells:
                continue
            jobs.append((scenario, args.target))
    jobs.sort(key=lambda job: job[0].agents / job[0].customers.live_answer, reverse=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_run_seed, jobs))
    elapsed = time.perf_counter() - started
    text = markdown(results, args, limit, elapsed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


def _cell(summary: tuple[float, ...] | None, kept: bool = True) -> str:
    if summary is None:
        return "none kept"
    mark = "" if kept else " ⚠"
    return f"{summary[0]:.3f} / {summary[1]:.2%} / {summary[2]:.2%}{mark}"


def markdown(results: list[dict[str, object]], args: argparse.Namespace, limit: float, elapsed: float) -> str:
    cells: dict[str, dict[str, dict[str, list[Figures]]]] = {}
    order: dict[str, tuple[int, str]] = {}
    for r in results:
        cell = str(r["cell"])
        order[cell] = (int(r["agents"]), cell)  # type: ignore[call-overload]
        families = cells.setdefault(cell, {})
        for family in ("progressive", "ours", "vicidial", "model"):
            for label, figures in r[family].items():  # type: ignore[attr-defined]
                families.setdefault(family, {}).setdefault(label, []).append(figures)
    target = args.target
    lines = [
        "# Pacing against the best known result",
        "",
        f"Generated by `nice -n 10 .venv/bin/python benchmarks/pacing_reference.py --hours {args.hours:g} "
        f"--seeds {args.seeds} --target {args.target:g} --agents {' '.join(str(a) for a in args.agents)}"
        f"{' --cells ' + ' '.join(args.cells) if args.cells else ''} --leads {args.leads}` in {elapsed:.0f} s: {args.hours:g} simulated hours per run, "
        f"seeds 1-{args.seeds}, target {target:.1%} under a {limit:.0%} limit. Each entry: mean day occupancy / "
        "mean day abandon rate / worst running abandon rate after 100 live answers (any seed). A tuned reference "
        f"keeps its best setting with mean abandon <= {target + TOLERANCE:.1%} and worst <= {limit:.0%}; ⚠ marks a default "
        "that breaks that. Goal = best known + 1 point (cap 0.98). See docs/pacing.md.",
        "",
        "| cell | progressive | VICIdial loop, best of 60 | model (z 1) | model, hindsight | best known "
        "| ours | ours 1st h (progr.) | goal | met |",
        "|---|---|---|---|---|---:|---|---:|---:|:-:|",
    ]
    misses = 0
    for cell in sorted(cells, key=lambda c: order[c]):
        fam = cells[cell]
        prog = _summary(fam["progressive"][""])
        ours = _summary(fam["ours"][""])
        vici = _best(fam["vicidial"], target, limit)
        model_default = _summary(fam["model"][ProbabilityModel(z=1.0).label()])
        hindsight = _best(fam["model"], target, limit)
        candidates = [prog[0]]
        candidates += [b[1][0] for b in (vici, hindsight) if b is not None]
        if _kept(model_default, target, limit):
            candidates.append(model_default[0])
        best = max(candidates)
        goal = max(prog[0], min(best + 0.01, GOAL_CAP))
        met = ours[0] >= goal - 1e-9 and _kept(ours, target, limit)
        misses += not met
        lines.append(
            f"| {cell} | {prog[0]:.3f} | {_cell(vici[1] if vici else None)}"
            f"{f' ({vici[0]})' if vici else ''} | {_cell(model_default, _kept(model_default, target, limit))} "
            f"| {_cell(hindsight[1] if hindsight else None)}{f' ({hindsight[0]})' if hindsight else ''} "
            f"| {best:.3f} | **{_cell(ours, ours[2] <= limit)}** | {ours[3]:.3f} ({prog[3]:.3f}) | {goal:.3f} "
            f"| {'yes' if met else 'no'} |"
        )
    lines += ["", f"Cells short of the goal: {misses} of {len(cells)}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
