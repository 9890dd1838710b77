"""Chaos run against the real sandbox for as long as asked (issue 11's "Must show").

    sudo .venv/bin/python benchmarks/chaos.py --minutes 10 --seed 7 --leads 600

Starts its own sandbox (port offset --port-offset, default 2300), runs a campaign
while a seeded driver kills and restarts the daemon, cuts and stalls its AMI
link, restarts Asterisk, drops, edits and removes campaign files and fuzzes the
API; then prints the faults by kind, the calls and INVITEs, and each invariant
as checked from SIPp's logs and the database. Exits 1 on a violated invariant
and prints the command that replays the seed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.integration.chaos

from dialer.sandbox import Sandbox, SandboxPorts  # noqa: E402
from tests.integration.chaos.driver import ChaosDriver  # noqa: E402
from tests.integration.chaos.figures import render  # noqa: E402

FINISH_S = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the chaos phase (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="fault schedule and numbers (default: random)")
    parser.add_argument("--leads", type=int, default=None, help="leads in the campaign (default: 120 a minute)")
    parser.add_argument("--faults-per-minute", type=float, default=5.0)
    parser.add_argument("--port-offset", type=int, default=2300, help="sandbox ports (default 2300)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the lab and logs here")
    parser.add_argument(
        "--dialer-checkout", type=Path, default=None,
        help="run the daemon and CLI from another checkout (e.g. an older tree, to see what it breaks)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    leads = args.leads or max(200, int(120 * args.minutes))
    if leads > 9800:
        parser.error("--leads: at most 9800 (the sandbox's four-digit customer serials)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-"))
    replay = (
        f"python benchmarks/chaos.py --minutes {args.minutes:g} --seed {seed} --leads {leads} "
        f"--faults-per-minute {args.faults_per_minute:g} --port-offset {args.port_offset}"
        + (f" --dialer-checkout {args.dialer_checkout}" if args.dialer_checkout else "")
    )
    sandbox = Sandbox(workdir / "sandbox", ports=SandboxPorts.offset(args.port_offset), agents=3)
    sandbox.up(progress=lambda message: print(f"[sandbox] {message}", file=sys.stderr))
    try:
        driver = ChaosDriver(
            sandbox, workdir / "lab", seed=seed, duration_s=args.minutes * 60.0, leads=leads,
            finish_s=FINISH_S, faults_per_minute=args.faults_per_minute, dialer_checkout=args.dialer_checkout,
        )  # fmt: skip
        result = asyncio.run(driver.run())
    finally:
        sandbox.down()
    print(render(result, replay))
    print(f"lab and logs: {workdir}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
