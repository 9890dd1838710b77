"""How much one daemon absorbs (issue 13, "the daemon is never the bottleneck").

The real Daemon (campaign runner, SQLite store, event consumer) dials a simulated
Asterisk (dialer.pbx.simulated.SimulatedPbx) in this process, and prints:

1. AMI events parsed per second (`dialer.ami.events.to_record` over the stream the
   daemon received in run 2, recorded), and events parsed *and applied* per second
   of CPU spent in the daemon's event consumer (record, board, runner, store writes).
   The consumer's batch of writes is its work wherever it is written: when a runner's
   tick writes it (before a final row of its own), that CPU is counted too, and so is
   what the consumer does after giving up a wait for the next event (its batch was due);
   an older checkout measured this way reads as it did before;
2. the process's CPU per 100 calls (the simulated PBX included, so an upper bound);
3. event-loop lag p50/p99 while ~600 calls are up (real time, real aiosqlite thread);
4. call completions per second one daemon absorbs: 600 calls that all hang up
   within a second, settled in how much CPU.

Runs 2 and 4 run on dialer.dst's virtual-time loop with SQLite inline, so their
figures are CPU, not waiting; run 3 runs on the real clock. Usage:

    python benchmarks/daemon_throughput.py [--calls 2400] [--lines 600] [--seed 1]

The figures depend on the machine and its load: compare runs on one machine
(an older checkout: PYTHONPATH=<its path> python benchmarks/daemon_throughput.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.ami.events import to_record
from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.daemon.server import Daemon
from dialer.dst.inline_sqlite import inline_sqlite
from dialer.dst.virtual_loop import VirtualTimeLoop
from dialer.leads.csv_import import LeadRow
from dialer.logs import configure_logging
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store.event_writes import EventWrites
from dialer.store.store import Store

T0 = datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp()  # a Tuesday, inside New York's calling hours


class TimedQueue(asyncio.Queue):  # type: ignore[type-arg]
    """The PBX's event queue, recording each event and the CPU the consumer spends on it:
    from the moment `get` hands an event over to the consumer's next `get`.

    Events arrive in chunks, `chunk` seconds apart, as a socket under load delivers them
    (panoramisk parses all the events of one read at once): the consumer then finds
    several waiting, as it does on a busy PBX, instead of one per timer of the simulation."""

    def __init__(self, chunk: float = 0.02) -> None:
        super().__init__()
        self.recorded: list[tuple[dict[str, str], float]] = []
        self.consumed = 0
        self.consumer_cpu = 0.0
        self._handed: float | None = None
        self._chunk = chunk
        self._held: list[Any] = []

    def put_nowait(self, item: Any) -> None:
        if not self._held:
            asyncio.get_running_loop().call_later(self._chunk, self._release)
        self._held.append(item)

    def _release(self) -> None:
        held, self._held = self._held, []
        for item in held:
            super().put_nowait(item)

    async def get(self) -> Any:
        if self._handed is not None:
            self.consumer_cpu += time.thread_time() - self._handed
            self._handed = None
        try:
            item = await super().get()
        except asyncio.CancelledError:
            # A wait the consumer gave up (its writes were due): what it does next, the
            # write above all, is its work too, counted until its next `get`.
            self._handed = time.thread_time()
            raise
        self.recorded.append((dict(item[0]), item[1]))
        self.consumed += 1
        self._handed = time.thread_time()
        return item


@contextlib.contextmanager
def _flushes_counted(queue: TimedQueue) -> Iterator[None]:
    """The consumer's batch written by a runner's tick (before a final row of its own, it
    writes what the batch holds) is the consumer's work too: its CPU is counted with it."""
    original = EventWrites.flush

    async def flush(self: EventWrites) -> None:
        if queue._handed is not None:  # the consumer's own: counted already
            return await original(self)
        started = time.thread_time()
        try:
            return await original(self)
        finally:
            queue.consumer_cpu += time.thread_time() - started

    EventWrites.flush = flush  # type: ignore[method-assign]
    try:
        yield
    finally:
        EventWrites.flush = original  # type: ignore[method-assign]


def _customers(rng: random.Random, fixed: bool) -> Callable[[str], Customer]:
    def customer(_number: str) -> Customer:
        if fixed:  # every call answers after 1 s and talks 30 s: they all end together
            return Customer("answer", after=1.0, talk=30.0)
        # All answer: a busy or unanswered number would be retried hours later, and the
        # idle ticks until then would be counted as the calls' CPU.
        return Customer("answer", after=rng.uniform(1.0, 6.0), talk=rng.uniform(15.0, 60.0))

    return customer


async def _prepare(tmp: Path, calls: int, lines: int) -> tuple[Path, Campaign]:
    agents = "".join(f"  - {{id: a{n}, interface: PJSIP/a{n}, queues: [sales]}}\n" for n in range(lines))
    config_path = tmp / "dialer.yaml"
    config_path.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp}/bench.db'}}\n"
        "tick_interval: 0.5\n"
        "trunks: [{name: carrier, calls_per_second: 1000}]\n"
        f"agents:\n{agents}"
    )
    campaign = Campaign(name="bench", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"mode": "progressive", "max_lines": lines, "ring_timeout": 25})
    store = await Store.open(f"sqlite+aiosqlite:///{tmp}/bench.db")
    try:
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=f"+1212{i:07d}") for i in range(calls)])
    finally:
        await store.close()
    return config_path, campaign


def _daemon(config_path: Path, campaign: Campaign, sim: SimulatedPbx, clock: Callable[[], float]) -> Daemon:
    return Daemon(load_config(config_path), {"bench": campaign}, until_done=True, drain_timeout=5,
                  clock=clock, pbx_factory=sim.attach)


def _live(daemon: Daemon) -> int:
    return sum(len(runner.attempts) for runner in daemon.runners.values())


def _simulator(seed: int, lines: int, fixed: bool) -> SimulatedPbx:
    agents = {f"PJSIP/a{n}": 0.3 for n in range(lines)}
    return SimulatedPbx(random.Random(seed), _customers(random.Random(seed + 1), fixed), agents=agents,
                        queues=("sales",))


def virtual_run(calls: int, lines: int, seed: int, fixed: bool) -> dict[str, Any]:
    """The whole campaign on virtual time: CPU only."""
    loop = VirtualTimeLoop()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name, inline_sqlite():
        tmp = Path(tmp_name)
        configure_logging("info", "json", stream=(tmp / "daemon.log").open("w"))
        config_path, campaign = loop.run_until_complete(_prepare(tmp, calls, lines))
        sim = _simulator(seed, lines, fixed)
        queue = TimedQueue()
        sim.events = queue

        async def main() -> None:
            start = loop.time()
            daemon = _daemon(config_path, campaign, sim, lambda: T0 + loop.time() - start)
            burst: dict[str, float] = {}

            async def watch() -> None:
                # The burst: from the first of the full wave's calls to end, to the last settled.
                peak = 0
                while True:
                    await asyncio.sleep(0.05)
                    live = _live(daemon)
                    peak = max(peak, live)
                    if live == peak and peak >= lines * 0.98:  # the wave is up: not one ended yet
                        burst.update({"from": time.process_time(), "live": float(peak), "events_from": queue.consumed,
                                      "consumer_from": queue.consumer_cpu})
                    elif "from" in burst and live == 0:
                        burst.update({"to": time.process_time(), "events_to": queue.consumed,
                                      "consumer_to": queue.consumer_cpu})
                        return

            watcher = asyncio.create_task(watch())
            cpu = time.process_time()
            await daemon.serve()
            result["cpu"] = time.process_time() - cpu
            watcher.cancel()
            result["burst"] = burst

        with _flushes_counted(queue):
            loop.run_until_complete(main())
        loop.close()
        result.update(calls=len(sim.dial_log), events=queue.consumed, consumer_cpu=queue.consumer_cpu,
                      recorded=queue.recorded)
    return result


def parse_rate(recorded: list[tuple[dict[str, str], float]], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for raw, at in recorded:
            to_record(raw, at)
        best = min(best, time.process_time() - started)
    return len(recorded) / best


def lag_run(lines: int, seed: int, talk: float) -> list[float]:
    """Real time: how late a 10 ms timer fires while `lines` calls are up."""
    lags: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        configure_logging("info", "json", stream=(tmp / "daemon.log").open("w"))

        async def main() -> None:
            config_path, campaign = await _prepare(tmp, lines, lines)
            sim = SimulatedPbx(random.Random(seed), lambda _n: Customer("answer", after=1.0, talk=talk),
                               agents={f"PJSIP/a{n}": 0.3 for n in range(lines)}, queues=("sales",))
            loop = asyncio.get_running_loop()
            start = loop.time()
            daemon = _daemon(config_path, campaign, sim, lambda: T0 + loop.time() - start)

            async def sample() -> None:
                while True:
                    before = loop.time()
                    await asyncio.sleep(0.01)
                    late = loop.time() - before - 0.01
                    if _live(daemon) >= lines * 0.9:
                        lags.append(late)

            sampler = asyncio.create_task(sample())
            await daemon.serve()
            sampler.cancel()

        asyncio.run(main())
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2400, help="calls in the CPU run")
    parser.add_argument("--lines", type=int, default=600, help="calls up at once (and agents)")
    parser.add_argument("--talk", type=float, default=20.0, help="seconds each call of the lag run lasts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    mixed = virtual_run(args.calls, args.lines, args.seed, fixed=False)
    parsed = parse_rate(mixed["recorded"])
    print(f"AMI events per call reaching the daemon: {mixed['events'] / max(1, mixed['calls']):.1f}")
    print(f"AMI events parsed per second (to_record, recorded stream of {len(mixed['recorded'])}): {parsed:,.0f}")
    applied = mixed["events"] / mixed["consumer_cpu"] if mixed["consumer_cpu"] else float("nan")
    print(f"AMI events parsed and applied per CPU second over the whole run (event consumer): {applied:,.0f}   "
          "goal >= 20,000")
    print(f"daemon CPU per 100 calls (whole process, simulated PBX included): "
          f"{100 * mixed['cpu'] / max(1, mixed['calls']):.3f} s   ({mixed['calls']} calls, {mixed['cpu']:.1f} s CPU)")

    wave = virtual_run(args.lines, args.lines, args.seed, fixed=True)
    burst = wave["burst"]
    if "to" in burst:
        cpu = burst["to"] - burst["from"]
        print(f"call completions per second absorbed: {burst['live'] / cpu:,.0f}   goal >= 200   "
              f"({burst['live']:.0f} calls ending together settled in {cpu:.2f} s CPU)")
        events = burst["events_to"] - burst["events_from"]
        consumer = burst["consumer_to"] - burst["consumer_from"]
        print(f"AMI events parsed and applied per CPU second in that burst (event consumer): "
              f"{events / consumer:,.0f}   goal >= 20,000   ({events} events)")
    else:
        print("call completions per second absorbed: the wave never filled (no figure)")

    lags = lag_run(args.lines, args.seed, args.talk)
    if len(lags) >= 2:
        cuts = statistics.quantiles(lags, n=100)
        print(f"event-loop lag while {args.lines} calls are up: p50 {1000 * cuts[49]:.1f} ms, "
              f"p99 {1000 * cuts[98]:.1f} ms   goal p99 < 20 ms   ({len(lags)} samples)")
    else:
        print(f"event-loop lag: fewer than 2 samples with {args.lines} calls up (no figure)")


if __name__ == "__main__":
    main()
