"""Plant one known bug in a copy of the tree and count the seeds the simulation needs to catch it.

    python benchmarks/dst_planted_bug.py [--days 0.002] [--max-seeds 200]

The mutation: `Store.lease_due_leads` writes the attempt row but never marks the lead
leased (the lead transition's write is skipped), so the Originate leaves for a lead that
is still pending and the next tick dials it again. The copy is made in a temporary
directory from the last commit (`git archive HEAD`); the checkout is not touched. Prints the seeds it took and the broken invariant.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path("dialer/store/store.py")
WHERE = "async def lease_due_leads("
ORIGINAL = "await lead_transitions.write(conn, row.id, change, now)"
MUTATED = "pass  # planted bug: the lead is never marked leased before its Originate"

PROBE = """
import sys
from dialer.dst.seed_run import run_seed
days, first, last = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for seed in range(first, last + 1):
    result = run_seed(seed, days)
    if result.violation is not None:
        print(seed)
        print(result.violation)
        break
"""


def mutate(tree: Path) -> None:
    """Apply the one mutation; fail loudly if the code it targets has changed."""
    path = tree / TARGET
    text = path.read_text()
    start = text.find(WHERE)
    at = text.find(ORIGINAL, start)
    if start < 0 or at < 0:
        raise SystemExit(f"the mutation's target is gone: {ORIGINAL!r} in {TARGET} after {WHERE!r}")
    path.write_text(text[:at] + MUTATED + text[at + len(ORIGINAL):])


def copy_tree(destination: Path) -> None:
    """The tree as last committed (HEAD): a consistent one even while files are being edited."""
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=0.002, help="simulated days per seed (default 0.002)")
    parser.add_argument("--max-seeds", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dst-planted-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        mutate(tree)
        env = {"PYTHONPATH": str(tree), "PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"}
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(args.days), "1", str(args.max_seeds)],
            cwd=tree, env=env, capture_output=True, text=True, check=False,
        )
    lines = probe.stdout.strip().splitlines()
    if probe.returncode != 0 or not lines:
        print(probe.stderr[-2000:], file=sys.stderr)
        print(f"not caught in {args.max_seeds} seeds of {args.days:g} days")
        return 1
    print(f"planted bug ({TARGET}: the lead is not leased before the Originate)")
    print(f"caught by seed {lines[0]}: {lines[0]} seed(s) of {args.days:g} simulated days")
    print("\n".join(lines[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
