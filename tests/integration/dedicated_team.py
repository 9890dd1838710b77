"""The dedicated-team case on the real sandbox (issue 16 item 4), shared by
`test_dedicated_team_sandbox.py` and `benchmarks/dedicated_team.py`.

Eight agent phones: agent1 and agent2 the key-account team (queue
key-accounts, nothing else in their config), agent3..agent8 the general pool
(queue sales). One predictive campaign works standard customers while key
customers fall due a few at a time during the run (imported while the daemon
runs, as revisits and callbacks fall due in a day). Figures come from SIPp's
own timestamped logs (who answered which call, when it ended) and the report:
each team's occupancy over the run, the key customers' longest wait (from the
customer answering to an agent's phone being offered the call) and abandons.

It drives the dialer only through its CLI, so `checkout` may be another tree
(`../dialer-old`): that is how the "before" figures are taken.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dialer.sandbox import CustomerKind, SandboxState, customer_number, read_agent_events, read_carrier_events

KEY_TEAM = ("agent1", "agent2")
GENERAL = ("agent3", "agent4", "agent5", "agent6", "agent7", "agent8")
FALLBACK_AFTER = 1
KEY_BATCHES = (3.0, 20.0, 35.0)  # seconds into the run; two key customers each


def people(serial: int, standard: int) -> tuple[list[str], list[str]]:
    """(key numbers, standard numbers): key accounts all answer; the rest a usual mix."""
    rng = random.Random(serial)
    key = [customer_number(CustomerKind.ANSWER, rng.randint(1, 2), rng.randint(8, 12), serial + i)
           for i in range(2 * len(KEY_BATCHES))]
    rest = []
    for i in range(standard):
        roll = rng.random()
        at = serial + 100 + i
        if roll < 0.45:
            rest.append(customer_number(CustomerKind.ANSWER, rng.randint(1, 3), rng.randint(10, 20), at))
        elif roll < 0.75:
            rest.append(customer_number(CustomerKind.BUSY, 1, 0, at))
        else:
            rest.append(customer_number(CustomerKind.NO_ANSWER, 0, 0, at))
    return key, rest


def run_case(
    sandbox: SandboxState, tmp: Path, *, lend: bool | None, serial: int, standard: int = 90,
    checkout: Path | None = None,
) -> dict[str, Any]:
    """Run the case once; `lend=None` leaves the setting out (a dialer that has none)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "campaigns").mkdir(exist_ok=True)
    key_rule: dict[str, Any] = {"queue": "key-accounts", "priority": 10, "fallback_priority": 20,
                                "fallback_after": FALLBACK_AFTER, "max_wait": 20, "wait_for_dedicated": True}
    if lend is not None:
        key_rule["lend_to_general"] = lend
    (tmp / "campaigns" / "accounts.yaml").write_text(yaml.safe_dump({
        "name": "accounts", "type": "telemarketing", "trunk": sandbox.carrier_trunk, "caller_id": "+15550100",
        "queue": "sales",
        "dialing": {"mode": "predictive", "ring_timeout": 5, "allow_short_ring": True, "max_lines": 20,
                    "abandon_window": "24h"},
        "numbers": {"format": "as_is"}, "retries": {},
        "tiers": {"sources": ["column"], "order_by": "tier", "routing": {"key": key_rule}},
    }))
    (tmp / "ami-secret").write_text(sandbox.ami.secret)
    phones = {a.id: a for a in sandbox.agents}
    agents = [{"id": a, "interface": phones[a].interface, "queues": ["sales"]} for a in GENERAL]
    agents += [{"id": a, "interface": phones[a].interface, "queues": ["key-accounts"]} for a in KEY_TEAM]
    config = tmp / "dialer.yaml"
    config.write_text(yaml.safe_dump({
        "ami": [{"host": sandbox.ami.host, "port": sandbox.ami.port, "username": sandbox.ami.username,
                 "secret_file": str(tmp / "ami-secret")}],
        "database": {"url": f"sqlite+aiosqlite:///{tmp}/dialer.db"},
        "campaign_dir": str(tmp / "campaigns"),
        "logging": {"level": "info", "format": "json"},
        "agents": agents,
    }))
    key, rest = people(serial, standard)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)

    def leads_file(name: str, numbers: list[str], tier: str) -> Path:
        path = tmp / name
        path.write_text("phone,name,tier\n" + "".join(f"{n},Customer {n},{tier}\n" for n in numbers))
        return path

    def dialer(*args: str, timeout: float = 60) -> str:
        result = subprocess.run([sys.executable, "-m", "dialer", *args, "--config", str(config)], check=False,
                                capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
        if result.returncode != 0:
            raise RuntimeError(f"dialer {args}: {result.stdout}\n{result.stderr}")
        return result.stdout

    dialer("leads", "import", "accounts", str(leads_file("standard.csv", rest, "standard")))
    log = (tmp / "daemon.log").open("w")
    started = time.time()
    daemon = subprocess.Popen([sys.executable, "-m", "dialer", "run", "--until-done", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=tmp)
    try:
        for batch, at in enumerate(KEY_BATCHES):
            time.sleep(max(0.0, started + at - time.time()))
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon stopped before the key customers of batch {batch} were due")
            dialer("leads", "import", "accounts", str(leads_file(f"key-{batch}.csv", key[2 * batch:2 * batch + 2], "key")))
        daemon.wait(timeout=300)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
    if daemon.returncode != 0:
        raise RuntimeError(f"dialer run exited {daemon.returncode}: {(tmp / 'daemon.log').read_text()[-3000:]}")
    report = json.loads(dialer("report", "accounts", "--json"))
    return figures(sandbox, report, set(key), set(rest))


def figures(sandbox: SandboxState, report: dict[str, Any], key: set[str], rest: set[str]) -> dict[str, Any]:
    carrier = [e for e in read_carrier_events(sandbox) if e.number in key | rest]
    calls = {c["attempt"]: c for c in report["calls"] if c["number"] in key | rest}
    agent_events = read_agent_events(sandbox)
    invites = [e for e in agent_events if e.event == "invite" and e.attempt in calls]
    attempt_of_leg = {e.call_id: e.attempt for e in invites}
    answered_leg: dict[str, Any] = {}
    ended_leg: dict[str, float] = {}
    for e in agent_events:
        if e.call_id in attempt_of_leg and e.at is not None:
            if e.event == "answered":
                answered_leg[e.call_id] = e
            elif e.event == "bye_received":
                ended_leg[e.call_id] = e.at
    times = [e.at for e in carrier if e.at is not None]
    start, end = min(times), max([*times, *ended_leg.values()])
    busy = {a: 0.0 for a in (*KEY_TEAM, *GENERAL)}
    took: dict[str, list[str]] = {a: [] for a in busy}
    for leg, e in answered_leg.items():
        if e.agent in busy:
            busy[e.agent] += ended_leg.get(leg, end) - e.at
            took[e.agent].append(calls[attempt_of_leg[leg]]["number"])
    answered_at = {e.number: e.at for e in carrier if e.event == "answered" and e.at is not None}
    key_waits = []
    for attempt, call in calls.items():
        if call["number"] in key and call["number"] in answered_at:
            offered = [e.at for e in invites if e.attempt == attempt and e.at is not None]
            key_waits.append(round(min(offered) - answered_at[call["number"]], 2) if offered else None)
    span = end - start
    by_tier = report["by_tier"]
    return {
        "seconds": round(span, 1),
        "key_team_occupancy": round(sum(busy[a] for a in KEY_TEAM) / (len(KEY_TEAM) * span), 3),
        "general_team_occupancy": round(sum(busy[a] for a in GENERAL) / (len(GENERAL) * span), 3),
        "key_calls": sum(1 for c in calls.values() if c["number"] in key),
        "key_answered": len(key_waits),
        "key_waits": key_waits,
        "key_longest_wait": max((w for w in key_waits if w is not None), default=None),
        "key_abandoned": by_tier.get("key", {}).get("abandoned", 0),
        "key_not_offered": sum(1 for w in key_waits if w is None),
        "standard_taken_by_key_team": sum(1 for a in KEY_TEAM for n in took[a] if n in rest),
        "key_taken_by_general": sum(1 for a in GENERAL for n in took[a] if n in key),
        "standard_abandoned": by_tier.get("standard", {}).get("abandoned", 0),
        "standard_live": by_tier.get("standard", {}).get("live_answered", 0),
    }
