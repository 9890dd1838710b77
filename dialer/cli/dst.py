"""`dialer dst --seeds 1-300 --days 0.5` / `dialer dst --replay SEED`: the whole daemon under seeded faults."""

from __future__ import annotations

import argparse
import os
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "dst",
        help="test the whole daemon by deterministic simulation with seeded faults",
        description=(
            "Run the real daemon (runner, store on SQLite, lead intake, reconciliation, campaign watcher) on a "
            "virtual clock against a simulated Asterisk, with faults drawn from each seed: daemon crash and "
            "restart, PBX restart, AMI drop and half-open link, refused Originates, slow or locked database, "
            "campaign file edits, agents logging out mid-call. Invariants are checked after every step; a "
            "failing seed prints the command that replays it exactly."
        ),
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--seeds", default="1-20", type=_seed_range, help="seeds to run: N or FIRST-LAST (1-20)")
    what.add_argument("--replay", type=int, metavar="SEED", help="run one seed, printing its trace; stop at the "
                      "first broken invariant")
    parser.add_argument("--days", type=float, default=0.02, help="simulated days per seed (0.02 = 29 minutes)")
    parser.set_defaults(func=run)


def _seed_range(text: str) -> range:
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a seed or a range of seeds: {text!r} (e.g. 7 or 1-300)") from None
    if high < low:
        raise argparse.ArgumentTypeError(f"empty range of seeds: {text!r}")
    return range(low, high + 1)


def _same_hashes() -> None:
    """Iteration over sets of strings follows PYTHONHASHSEED: fix it, so a seed replays the same anywhere."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "dialer", *sys.argv[1:]])


def run(args: argparse.Namespace) -> int:
    if not 0 < args.days <= 30:
        print("dialer dst: --days must be above 0 and at most 30", file=sys.stderr)
        return 2
    _same_hashes()
    from dialer.dst.seed_run import replay_command, run_seed

    if args.replay is not None:
        result = run_seed(args.replay, args.days, echo=print)
        print(f"seed {result.seed}: {result.calls} calls, {result.faults} faults, trace {result.trace_hash}")
        if result.violation is not None:
            print(result.violation)
            print(f"replay: {replay_command(result.seed, args.days)}")
            return 1
        return 0
    failed: list[int] = []
    calls = faults = 0
    cpu = 0.0
    started = time.monotonic()
    last_line = 0.0
    for index, seed in enumerate(args.seeds, 1):
        result = run_seed(seed, args.days)
        calls += result.calls
        faults += result.faults
        cpu += result.cpu_s
        if result.violation is not None:
            failed.append(seed)
            print(f"seed {seed} FAILED: {result.violation}", file=sys.stderr)
            print(f"replay: {replay_command(seed, args.days)}", file=sys.stderr)
        if sys.stderr.isatty() or time.monotonic() - last_line >= 10 or index == len(args.seeds):
            last_line = time.monotonic()
            print(f"\r{index}/{len(args.seeds)} seeds, {len(failed)} failed, {calls} calls, "
                  f"{time.monotonic() - started:.0f} s", end="" if sys.stderr.isatty() else "\n",
                  file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    rate = calls / cpu if cpu else 0.0
    print(f"{len(args.seeds)} seeds x {args.days:g} days: {calls} calls, {faults} faults, "
          f"{cpu:.1f} s CPU, {rate:.0f} calls per CPU second; {len(failed)} failed"
          + (f": {' '.join(map(str, failed))}" if failed else ""))
    return 1 if failed else 0
