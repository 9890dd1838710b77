"""The dedicated-team case (issue 16 item 4): a key-account team of 2 beside 6
general agents, before (reserved agents take only reserved calls) and after
(the team is lent to the general queue while no key customer is ringing,
waiting or due).

    .venv/bin/python benchmarks/dedicated_team.py                 # simulator, 3 seeds, 8 h
    .venv/bin/python benchmarks/dedicated_team.py --sandbox       # real Asterisk, lending off then on
    PYTHONPATH=../dialer-old .venv/bin/python benchmarks/dedicated_team.py --sandbox --dialer-checkout ../dialer-old

Prints per run: each team's occupancy, the key customers' longest wait and
abandons (goal: 0), the waits past `fallback_after`, the key leads' delay from
due to dialed (what lending costs them), the general abandon rate.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.integration.dedicated_team


def simulated(seeds: int, hours: float) -> None:
    from dialer.simulation.dedicated import TeamScenario, simulate_team

    header = ("lend", "seed", "key occ", "general occ", "key calls", "key answered", "key longest wait s",
              "waits > fallback", "key abandoned", "key delay mean/max s", "general abandon", "general by key")
    rows = []
    for seed in range(1, seeds + 1):
        for lend in (False, True):
            r = simulate_team(replace(TeamScenario(), seed=seed, hours=hours, lend=lend))
            rows.append(("on" if lend else "off", str(seed), f"{r.key_occupancy:.3f}", f"{r.general_occupancy:.3f}",
                         str(r.key_calls), str(r.key_answered), f"{r.key_longest_wait:.1f}",
                         str(r.key_waits_past_fallback), str(r.key_abandoned),
                         f"{r.key_mean_delay:.0f}/{r.key_max_delay:.0f}", f"{r.general_abandon_rate:.2%}",
                         str(r.general_served_by_key)))
    widths = [max(len(c) for c in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def on_sandbox(args: argparse.Namespace) -> None:
    from dialer.sandbox import Sandbox, SandboxPorts
    from tests.integration.dedicated_team import run_case

    work = Path(args.workdir or tempfile.mkdtemp(prefix="dedicated-team-"))
    handle = Sandbox(work / "sandbox", ports=SandboxPorts.offset(args.port_offset), agents=8)
    handle.up(progress=lambda message: print(f"[sandbox] {message}", file=sys.stderr))
    try:
        state = handle.state()
        serial = args.serial or random.Random().randrange(1000, 7000)
        cases = [None] if args.dialer_checkout else [False, True]
        for n, lend in enumerate(cases):
            label = "base" if lend is None else f"lend {'on' if lend else 'off'}"
            figures = run_case(state, work / f"run-{n}", lend=lend, serial=serial + 1000 * n,
                               checkout=args.dialer_checkout)
            print(json.dumps({"case": label, **figures}))
    finally:
        handle.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--sandbox", action="store_true", help="run on the real Asterisk sandbox instead")
    parser.add_argument("--dialer-checkout", type=Path, default=None,
                        help="sandbox: the dialer tree whose CLI runs the case (one run, lending left unset)")
    parser.add_argument("--port-offset", type=int, default=2810)
    parser.add_argument("--serial", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.sandbox:
        on_sandbox(args)
    else:
        simulated(args.seeds, args.hours)
    return 0


if __name__ == "__main__":
    sys.exit(main())
