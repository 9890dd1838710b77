"""Hostile campaign files: time and memory of `dialer validate`, event-loop stalls in the daemon.

    .venv/bin/python benchmarks/yaml_bomb.py                      # this checkout
    .venv/bin/python benchmarks/yaml_bomb.py --checkout ../dialer-old  # another one, to compare

Prints, for the 12-line alias bomb of issue 11 (about 330 bytes):
- `dialer validate bomb.yaml`: wall time, peak RSS and the first line it prints;
and for the bomb, a 500 KB and a 10 MB campaign file dropped into the campaign directory:
- the longest the daemon's event loop went without running (a 5 ms heartbeat) while
  the campaign watcher read the directory, and what it reported.

Each measurement runs in a child process with the checkout's code, its address space
capped (--memory-gb, default 6) so a runaway parse cannot take the machine down.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bomb(levels: int = 10, width: int = 4) -> str:
    lines = ["name: bomb", "l0: &l0 [" + ", ".join(["xx"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def big_campaign(size: int = 10 * 1024 * 1024) -> str:
    head = (
        "name: big\ntype: telemarketing\ntrunk: PJSIP/{number}@carrier\ncaller_id: '+15550100'\n"
        "queue: sales\nnotes:\n"
    )
    line = "  - a note someone pasted into the campaign file\n"
    return head + line * ((size - len(head)) // len(line))


def run_child(checkout: Path, args: list[str], memory_gb: float, timeout: float) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS in KiB, exit status, output) of `python args` with `checkout` first."""
    limit = int(memory_gb * 1024**3)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, *args], cwd=checkout, env=env, preexec_fn=cap,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    # Reaped here with wait4, not by Popen, for this child's own peak RSS.
    killer = threading.Timer(timeout, child.kill)
    killer.start()
    assert child.stdout is not None
    out = child.stdout.read()
    child.stdout.close()
    _, status, usage = os.wait4(child.pid, 0)
    killer.cancel()
    child.returncode = code = os.waitstatus_to_exitcode(status)
    if code < 0:
        out = f"(ended by signal {-code}) " + out
    return time.monotonic() - started, usage.ru_maxrss, code, out


# Runs in the child: a daemon object (no AMI, no database needed for files that are
# refused) whose campaign watcher reads a directory while a heartbeat measures the loop.
_LOOP_PROBE = textwrap.dedent(
    """
    import asyncio, gc, sys, time
    from pathlib import Path
    from dialer.config.loader import load_config
    from dialer.daemon.campaign_watcher import CampaignWatcher
    from dialer.daemon.server import Daemon

    async def main(config_path):
        config = load_config(config_path)
        daemon = Daemon(config, {})
        watcher = CampaignWatcher(daemon, config.campaign_dir)
        worst = 0.0
        done = False
        collections = []  # a full collection stops every thread, the loop's too

        def timed(phase, info):
            if phase == "start":
                collections.append(time.perf_counter())
            else:
                collections[-1] = time.perf_counter() - collections[-1]

        gc.callbacks.append(timed)

        async def heartbeat():
            nonlocal worst
            last = time.monotonic()
            while not done:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                worst = max(worst, now - last - 0.005)
                last = now

        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await watcher.reload()
        took = time.monotonic() - started
        done = True
        await beat
        issues = watcher.issue_lines()
        gc.callbacks.remove(timed)
        longest_gc = max(collections, default=0.0)
        print(f"reload {took:.2f} s; loop blocked at most {worst * 1000:.0f} ms"
              f" (longest garbage collection meanwhile: {longest_gc * 1000:.0f} ms)")
        print("reported:", (issues[0][:150] if issues else "nothing"))

    asyncio.run(main(sys.argv[1]))
    """
)


def loop_blocked(checkout: Path, name: str, text: str, memory_gb: float, timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="yaml-bomb-") as tmp:
        work = Path(tmp)
        (work / "campaigns").mkdir()
        (work / "campaigns" / name).write_text(text)
        (work / "dialer.yaml").write_text(
            "ami: [{username: dialer, secret: x}]\n"
            "database: {url: 'sqlite+aiosqlite:///dialer.db'}\n"
            "campaign_dir: campaigns\n"
        )
        wall, rss, status, out = run_child(
            checkout, ["-c", _LOOP_PROBE, str(work / "dialer.yaml")], memory_gb, timeout
        )
    return f"{out.strip()}\n    (child: {wall:.1f} s, peak RSS {rss / 1024:.0f} MB, exit {status})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=REPO, help="the dialer source tree to measure")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address-space cap of each child")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a child is killed")
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    text = bomb()
    print(f"checkout: {checkout}")
    print(f"bomb: {len(text.encode())} bytes, {text.count(chr(10))} lines")

    with tempfile.TemporaryDirectory(prefix="yaml-bomb-") as tmp:
        path = Path(tmp) / "bomb.yaml"
        path.write_text(text)
        wall, rss, status, out = run_child(
            checkout, ["-m", "dialer", "validate", str(path)], args.memory_gb, args.timeout
        )
    first = out.strip().splitlines()[0][:150] if out.strip() else ""
    print(f"dialer validate bomb.yaml: {wall:.2f} s, peak RSS {rss / 1024:.0f} MB, exit {status}")
    print(f"    {first}")

    print("bomb dropped into the campaign directory:")
    print("    " + loop_blocked(checkout, "bomb.yaml", text, args.memory_gb, args.timeout).replace("\n", "\n    "))
    near = big_campaign(500 * 1024)
    print("500 KB campaign file (under the size limit: parsed) dropped into the campaign directory:")
    print("    " + loop_blocked(checkout, "near.yaml", near, args.memory_gb, args.timeout).replace("\n", "\n    "))
    big = big_campaign()
    print(f"{len(big) / 1024**2:.0f} MB campaign file dropped into the campaign directory:")
    print("    " + loop_blocked(checkout, "big.yaml", big, args.memory_gb, args.timeout).replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
