"""Deterministic simulation of the whole daemon for as many seeds and simulated days as asked.

    python benchmarks/dst.py --seeds 1-20 --days 0.05 [--profile]

Runs `dialer.dst` (the real Daemon on a virtual clock against SimulatedPbx, seeded faults,
invariants after every step) and prints the calls simulated per second of CPU, the simulated
seconds per second of CPU, the faults injected and every failing seed with the command that
replays it. `--profile` adds where the CPU time goes (cProfile, by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.dst.seed_run import replay_command, run_seed  # noqa: E402


def _seeds(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=_seeds, default=_seeds("1-10"), help="N or FIRST-LAST (default 1-10)")
    parser.add_argument("--days", type=float, default=0.02, help="simulated days per seed (default 0.02)")
    parser.add_argument("--profile", action="store_true", help="print where the CPU time goes")
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"  # the same traces as `dialer dst --replay`
        os.execv(sys.executable, [sys.executable, *sys.argv])
    profiler = cProfile.Profile() if args.profile else None
    calls = faults = 0
    failed: list[str] = []
    started = time.process_time()
    for seed in args.seeds:
        if profiler is not None:
            profiler.enable()
        result = run_seed(seed, args.days)
        if profiler is not None:
            profiler.disable()
        calls += result.calls
        faults += result.faults
        if result.violation is not None:
            failed.append(f"seed {seed}: {result.violation}\n  replay: {replay_command(seed, args.days)}")
        print(f"seed {seed}: {result.calls} calls, {result.faults} faults, {result.cpu_s:.2f} s CPU, "
              f"trace {result.trace_hash}{' FAILED' if result.violation else ''}", flush=True)
    cpu = time.process_time() - started
    simulated = len(args.seeds) * args.days * 86400
    print(f"\n{len(args.seeds)} seeds x {args.days:g} days ({simulated / 3600:.1f} simulated hours): "
          f"{calls} calls, {faults} faults in {cpu:.1f} s CPU")
    print(f"calls simulated per CPU second: {calls / cpu:.1f}")
    print(f"simulated seconds per CPU second: {simulated / cpu:.0f}")
    print(f"failing seeds: {len(failed)}")
    for line in failed:
        print(line)
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(r"dialer/(daemon|store|webhook|dst)", 25)
        print(out.getvalue())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
