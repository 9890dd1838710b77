"""How fast and how often the daemon dials, judged from the PBX's and the carrier's own logs.

- A campaign whose trunk names an endpoint Asterisk does not have: every Originate
  is refused (Asterisk 22 queues it, then answers OriginateResponse Failure with no
  channel ever made). The daemon makes a few Originates and backs the trunk off; it
  neither loops on the refusals nor closes the leads as if customers had answered.
- A campaign on the real carrier with `calls_per_second: 2`: SIPp's INVITE times
  are never faster than 2 a second (plus the burst of one tick).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dialer.sandbox import CustomerKind, SandboxState, customer_number, read_carrier_events
from tests.integration.campaign_lab import Lab, make_lab, write_leads

pytestmark = pytest.mark.sandbox

RUN_SECONDS = 25.0


def numbers(kind: CustomerKind, count: int) -> list[str]:
    serial = random.Random().randrange(1000, 9000 - count)
    return [customer_number(kind, 0, 0, serial + i) for i in range(count)]


def run_daemon_for(lab: Lab, seconds: float, log: Path) -> str:
    """`dialer run` for `seconds`, then SIGTERM; its JSON log."""
    with log.open("wb") as output:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dialer", "run", "--config", str(lab.config)],
            stdout=subprocess.DEVNULL,
            stderr=output,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    try:
        time.sleep(seconds)
        assert daemon.poll() is None, f"the daemon exited early:\n{log.read_text()[-3000:]}"
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    return log.read_text()


def logged(log: str, event: str) -> list[dict[str, object]]:
    entries = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            entries.append(entry)
    return entries


@pytest.mark.timeout(150)
def test_a_trunk_asterisk_refuses_gets_a_few_originates_not_a_hot_loop(sandbox: SandboxState, tmp_path: Path) -> None:
    endpoint = f"nosuch{random.Random().randrange(10**8):08d}"
    phones = numbers(CustomerKind.ANSWER, 30)
    lab = make_lab(
        tmp_path,
        sandbox,
        campaign="ghost",
        dialing={"mode": "progressive", "ring_timeout": 15, "max_lines": 10},
        rules={"trunk": "PJSIP/{number}@" + endpoint},
    )
    lab.dialer("leads", "import", "ghost", str(write_leads(tmp_path / "leads.csv", phones)))
    started = datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC
    log = run_daemon_for(lab, RUN_SECONDS, tmp_path / "daemon.log")

    # Asterisk's own record: one line per Originate it could not make a channel for.
    pbx_log = Path(sandbox.asterisk_log).read_text(errors="replace")
    refused_by_pbx = pbx_log.count(f"endpoint '{endpoint}' was not found")
    assert 3 <= refused_by_pbx <= 12, (refused_by_pbx, log[-3000:])
    with sqlite3.connect(tmp_path / "dialer.db") as conn:
        attempts = conn.execute("SELECT phone, outcome FROM call_attempts").fetchall()
        leads = conn.execute("SELECT phone, state, attempts, next_attempt_at, final_reason FROM leads").fetchall()
    assert len(attempts) == refused_by_pbx and {o for _, o in attempts} == {"refused"}, attempts
    # No lead was closed by the trunk's fault; each refused one waits minutes, not seconds,
    # and has its attempt back (nobody was called).
    assert {state for _, state, _, _, _ in leads} == {"pending"}, leads
    refused = [lead for lead in leads if lead[3] is not None]
    assert len(refused) == refused_by_pbx and all(n == 0 for _, _, n, _, _ in refused), leads
    assert all(datetime.fromisoformat(at) >= started + timedelta(minutes=14) for _, _, _, at, _ in refused), refused
    finished = logged(log, "call.finished")
    assert {e["outcome"] for e in finished} == {"refused"}


@pytest.mark.timeout(150)
def test_originates_to_a_trunk_with_2_calls_per_second_never_go_faster(sandbox: SandboxState, tmp_path: Path) -> None:
    rate = 2.0
    # Busy at once: each call frees its agent's line within milliseconds, so only the
    # trunk's limit holds the pace (three free agents alone would allow 6 a second).
    phones = numbers(CustomerKind.BUSY, 24)
    lab = make_lab(
        tmp_path,
        sandbox,
        campaign="paced",
        dialing={"mode": "progressive", "ring_timeout": 15, "max_lines": 10},
    )
    config = yaml.safe_load(lab.config.read_text())
    config["trunks"] = [{"name": sandbox.carrier_trunk.partition("@")[2], "calls_per_second": rate}]
    lab.config.write_text(yaml.safe_dump(config))
    lab.dialer("leads", "import", "paced", str(write_leads(tmp_path / "leads.csv", phones)))
    run = lab.dialer("run", "--until-done", timeout=120)
    assert "daemon.all_campaigns_done" in run.stderr

    wanted = set(phones)
    invites = sorted(e.at for e in read_carrier_events(sandbox) if e.event == "invite" and e.number in wanted)
    assert len(invites) == len(phones)
    assert all(at is not None for at in invites)
    # In every window between two INVITEs: at most rate * length + the burst (one tick's
    # worth: 1 call at 2/s and 0.5 s ticks). 0.3 s of slack for Asterisk's and SIPp's own
    # delays on a busy machine; without the limit, 3 INVITEs leave within milliseconds.
    burst, slack = 1, 0.3
    worst = max(
        (j - i + 1) - (rate * (invites[j] - invites[i] + slack) + burst)
        for i in range(len(invites))
        for j in range(i, len(invites))
    )
    assert worst <= 0, [round(t - invites[0], 2) for t in invites]
    # ... and the limit is a pace, not a stall: the trunk's rate was used.
    assert invites[-1] - invites[0] <= (len(invites) - 1) / rate + 5, [round(t - invites[0], 2) for t in invites]
