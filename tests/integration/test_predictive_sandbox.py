"""Predictive pacing against the real sandbox: more agent occupancy than progressive,
with the abandon rate under its limit, as measured from what SIPp saw.

Two campaigns run side by side for the same time on the same kind of
customers, each with its own pool of six agent phones: one progressive, one
predictive. Times are compressed (rings of seconds, talks of a few seconds)
so the predictive mode leaves its cold start within the run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dialer.sandbox import CustomerKind, Sandbox, SandboxPorts, SandboxState, customer_number, read_carrier_events
from dialer.sandbox.events import parse_agent_log
from tests.integration.campaign_lab import write_leads
from tests.integration.conftest import PORT_OFFSET

pytestmark = pytest.mark.sandbox

POOL = 6
RUN_SECONDS = 170.0
WARMUP_SECONDS = 80.0  # the predictive mode dials progressively until it has seen enough calls
RING_TIMEOUT = 6


@pytest.fixture(scope="module")
def big_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    handle = Sandbox(tmp_path_factory.mktemp("pacing-sandbox"), ports=SandboxPorts.offset(PORT_OFFSET + 50), agents=2 * POOL)
    handle.up(progress=lambda message: print(f"[sandbox] {message}", file=sys.stderr))
    try:
        yield handle.state()
    finally:
        handle.down()


def customers(rng: random.Random, count: int, serial: int) -> list[str]:
    numbers = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.45:
            number = customer_number(CustomerKind.ANSWER, rng.randint(1, 4), rng.randint(4, 9), serial + i)
        elif roll < 0.55:
            number = customer_number(CustomerKind.BUSY, 1, 0, serial + i)
        else:
            number = customer_number(CustomerKind.NO_ANSWER, 0, 0, serial + i)
        numbers.append(number)
    return numbers


class AgentPhoneClock:
    """Timestamps the agent phones' log lines as they appear (SIPp writes each line at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> "AgentPhoneClock":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        offset = 0
        pending = ""
        while not self._stop.is_set():
            with self.path.open() as stream:
                stream.seek(offset)
                chunk = stream.read()
                offset = stream.tell()
            now = time.monotonic()
            pending += chunk
            *whole, pending = pending.split("\n")
            self.lines.extend((now, line) for line in whole if line.strip())
            time.sleep(0.05)

    def talk_intervals(self) -> dict[str, list[tuple[float, float]]]:
        """Per agent, (answered, hung up) times of each call the phone took."""
        started: dict[str, tuple[str, float]] = {}
        intervals: dict[str, list[tuple[float, float]]] = {}
        for at, line in self.lines:
            (event,) = parse_agent_log(line + "\n")
            if event.event == "answered":
                started[event.call_id] = (event.agent, at)
            elif event.event == "bye_received" and event.call_id in started:
                agent, begun = started.pop(event.call_id)
                intervals.setdefault(agent, []).append((begun, at))
        return intervals


def occupancy(intervals: dict[str, list[tuple[float, float]]], agents: list[str], start: float, end: float) -> float:
    busy = sum(
        max(0.0, min(b, end) - max(a, start)) for agent in agents for a, b in intervals.get(agent, [])
    )
    return busy / (len(agents) * (end - start))


@pytest.mark.timeout(420)
def test_predictive_keeps_agents_busier_than_progressive_under_the_abandon_limit(
    big_sandbox: SandboxState, tmp_path: Path
) -> None:
    sandbox = big_sandbox
    rng = random.Random(20261123)
    pools = {"progressive": ("sales", sandbox.agents[:POOL]), "predictive": ("support", sandbox.agents[POOL:])}
    campaign_dir = tmp_path / "campaigns"
    campaign_dir.mkdir()
    numbers: dict[str, list[str]] = {}
    for serial, (mode, (queue, _)) in zip((1000, 5000), pools.items()):
        numbers[mode] = customers(rng, 600, serial)
        (campaign_dir / f"{mode}.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": mode,
                    "type": "telemarketing",
                    "trunk": sandbox.carrier_trunk,
                    "caller_id": "+15550100",
                    "queue": queue,
                    "dialing": {
                        "mode": mode,
                        "ring_timeout": RING_TIMEOUT,
                        "allow_short_ring": True,
                        "max_lines": 30,
                        "abandon_window": "24h",
                    },
                    "numbers": {"format": "as_is"},  # the sandbox's lab numbers are not E.164
                    "retries": {},
                }
            )
        )
    (tmp_path / "ami-secret").write_text(sandbox.ami.secret)
    config = tmp_path / "dialer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": [{"host": sandbox.ami.host, "port": sandbox.ami.port, "username": sandbox.ami.username,
                         "secret_file": str(tmp_path / "ami-secret")}],
                "database": {"url": "sqlite+aiosqlite:///dialer.db"},
                "campaign_dir": "campaigns",
                "logging": {"level": "info", "format": "json"},
                "agents": [
                    {"id": phone.id, "interface": phone.interface, "queues": [queue]}
                    for queue, phones in pools.values()
                    for phone in phones
                ],
                # Both campaigns share the sandbox's carrier, which has no CPS limit: the
                # default 10 calls/s, split between them, would measure the trunk, not the pacing.
                "trunks": [{"name": sandbox.carrier_trunk.partition("@")[2], "calls_per_second": 200}],
            }
        )
    )

    def dialer(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dialer", *args, "--config", str(config)],
            capture_output=True, text=True, timeout=timeout, check=True,
        )

    for mode in pools:
        dialer("leads", "import", mode, str(write_leads(tmp_path / f"{mode}.csv", numbers[mode])))

    with AgentPhoneClock(Path(sandbox.agent_events)) as phones:
        log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dialer", "run", "--config", str(config), "--drain-timeout", "40"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        started = time.monotonic()
        try:
            time.sleep(RUN_SECONDS)
            measured_until = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
            log.close()
        time.sleep(0.5)
    intervals = phones.talk_intervals()

    carrier = read_carrier_events(sandbox)
    figures = {}
    for mode, (queue, phones_in_pool) in pools.items():
        ours = set(numbers[mode])
        live = sum(1 for e in carrier if e.event == "answered" and e.number in ours)
        ids = [p.id for p in phones_in_pool]
        reached = sum(len(intervals.get(agent, [])) for agent in ids)
        report = json.loads(dialer("report", mode, "--json").stdout)
        figures[mode] = {
            "occupancy": round(occupancy(intervals, ids, started + WARMUP_SECONDS, measured_until), 3),
            "live_answers": live,
            "reached_agent": reached,
            "abandon_rate_sipp": round((live - reached) / live, 4) if live else 0.0,
            "report": {k: report[k] for k in ("live_answered", "abandoned", "abandon_rate", "attempts")},
        }
    print(json.dumps(figures, indent=2))

    progressive, predictive = figures["progressive"], figures["predictive"]
    # The dialer's own books agree with what the phones saw.
    for mode in pools:
        assert figures[mode]["report"]["live_answered"] == figures[mode]["live_answers"], figures
        assert figures[mode]["report"]["abandoned"] == figures[mode]["live_answers"] - figures[mode]["reached_agent"], figures
    assert progressive["abandon_rate_sipp"] == 0.0, figures
    assert predictive["abandon_rate_sipp"] <= 0.03, figures
    assert predictive["occupancy"] >= progressive["occupancy"] + 0.03, figures
