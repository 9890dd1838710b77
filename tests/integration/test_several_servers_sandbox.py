"""Several Asterisk servers against two real sandboxes (issue 13): one daemon, one campaign, calls
spread over both servers; server b restarted mid-campaign; from both SIPp carriers' logs and the
database: both carried calls, a went on while b was away, no number dialed twice but for the calls
b's restart cut, every lead accounted for, every attempt with one final row on its server.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dialer.sandbox import CustomerKind, Sandbox, customer_number, read_carrier_events
from tests.integration.conftest import PORT_OFFSET
from tests.integration.server_pair import ami_servers, floor_agents, sandbox_pair

pytestmark = pytest.mark.sandbox

LEADS = 14


@pytest.fixture(scope="module")
def two_sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Sandbox]]:
    # Clear of the session's own sandbox at PORT_OFFSET (alive all session long in a full run)
    # and of the other tests' (+5 to +100).
    yield from sandbox_pair(tmp_path_factory, PORT_OFFSET + 300)


def _rows(db: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


def test_one_campaign_on_two_servers_rides_out_a_restart_of_one(
    two_sandboxes: tuple[Sandbox, Sandbox], tmp_path: Path
) -> None:
    sandbox_a, sandbox_b = two_sandboxes
    a, b = sandbox_a.state(), sandbox_b.state()
    serial = random.Random().randrange(1000, 9000 - LEADS)
    numbers = [customer_number(CustomerKind.ANSWER, 1, 8, serial + i) for i in range(LEADS)]
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "spread.yaml").write_text(yaml.safe_dump({
        "name": "spread", "type": "telemarketing", "trunk": a.carrier_trunk, "caller_id": "+15550100",
        "queue": "sales", "numbers": {"format": "as_is"},
        "dialing": {"mode": "progressive", "max_lines": 6, "ring_timeout": 30, "allow_short_ring": True,
                    "agent_wait": 30},
        # A call b's restart cuts is due again at once, so the run ends soon after.
        "retries": {"interrupted": {"delay_minutes": 0, "max_attempts": 3},
                    "refused": {"delay_minutes": 0, "max_attempts": 5}},
    }))
    servers = ami_servers(tmp_path, a, b)
    # Interfaces are unique over the floor: agent1 and agent2 register on a, agent3 on b.
    agents = floor_agents(a, b, on_a=2, on_b=1)
    config = tmp_path / "dialer.yaml"
    config.write_text(yaml.safe_dump({
        "ami": servers, "database": {"url": "sqlite+aiosqlite:///dialer.db"}, "campaign_dir": "campaigns",
        "logging": {"level": "info", "format": "json"}, "agents": agents, "tick_interval": 0.2,
    }))
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n" + "".join(f"{n}\n" for n in numbers))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = [sys.executable, "-m", "dialer"]
    subprocess.run([*run, "leads", "import", "spread", str(leads), "--config", str(config)], check=True, env=env,
                   capture_output=True, timeout=60)
    before = {"a": len(read_carrier_events(a)), "b": len(read_carrier_events(b))}

    def invites(state: object, name: str) -> list[tuple[str, float]]:
        return [(e.number, e.at or 0.0) for e in read_carrier_events(state)[before[name]:]  # type: ignore[arg-type]
                if e.event == "invite" and e.number in numbers]

    log = tmp_path / "daemon.log"
    with log.open("ab") as output:
        daemon = subprocess.Popen([*run, "run", "--until-done", "--config", str(config)], stdout=subprocess.DEVNULL,
                                  stderr=output, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (invites(a, "a") and invites(b, "b")):
            assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        restarted_at = time.time()
        sandbox_b.restart_asterisk()
        back_at = time.time()
        assert daemon.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    db = tmp_path / "dialer.db"
    on_a, on_b = invites(a, "a"), invites(b, "b")
    # Both servers carried calls; a went on dialing while b was restarting.
    assert on_a and on_b
    assert any(restarted_at <= at <= back_at for _, at in on_a) or any(at > restarted_at for _, at in on_a)
    leads_rows = _rows(db, "SELECT phone, state, final_outcome FROM leads")
    attempts = _rows(db, "SELECT phone, state, outcome, server, cut_short, dialed_at, ended_at FROM call_attempts")
    seen = f"restart {restarted_at}..{back_at}; attempts: {[tuple(r) for r in attempts]}"
    assert {r["phone"]: (r["state"], r["final_outcome"]) for r in leads_rows} == {
        n: ("done", "answered") for n in numbers
    }, seen
    assert all(r["state"] == "ended" and r["outcome"] for r in attempts)
    assert {r["server"] for r in attempts} <= {"a", "b"}
    # Each attempt reached the carrier of its server once; a number twice only after b's restart cut it.
    dialed = Counter(r["phone"] for r in attempts if r["outcome"] not in ("not_sent", "refused"))
    assert Counter(n for n, _ in on_a) + Counter(n for n, _ in on_b) == dialed
    for row in attempts:
        if row["outcome"] == "interrupted" or row["cut_short"]:
            assert row["server"] == "b", dict(row)
    assert all(count == 1 for number, count in dialed.items()
               if not any(r["phone"] == number and r["server"] == "b" for r in attempts))
    per_server = Counter(r["server"] for r in attempts if r["outcome"] not in ("not_sent", "refused"))
    assert per_server["a"] == len(on_a) and per_server["b"] == len(on_b)
