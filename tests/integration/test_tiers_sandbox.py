"""Customer tiers against the real sandbox: key accounts ring their dedicated agents,
fall back to the general agents when those are logged out, and are never dropped
while the other tiers are dialed predictively.

A module sandbox with eight agent phones: agent1 and agent2 are the key-account
team (queue key-accounts), agent3..agent8 the general pool (queue sales).
Phase 1 runs with the key team logged out (not in the daemon's config, so never
added to their queue), phase 2 with them logged in: the queue starts empty, and
the members phase 2 adds are never removed, hence this order. Both phases run
the same campaign on one database with new customers each: phase 2 starts with
the pacing statistics phase 1 left, so its predictive pacing is warm from the
first call and places more calls than there are agents.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.sandbox import (
    CustomerKind,
    Sandbox,
    SandboxPorts,
    SandboxState,
    customer_number,
    read_agent_events,
    read_carrier_events,
)
from tests.integration.conftest import PORT_OFFSET

pytestmark = pytest.mark.sandbox

KEY_TEAM = ("agent1", "agent2")
GENERAL = ("agent3", "agent4", "agent5", "agent6", "agent7", "agent8")
RING_TIMEOUT = 5


@pytest.fixture(scope="module")
def tier_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    handle = Sandbox(tmp_path_factory.mktemp("tier-sandbox"), ports=SandboxPorts.offset(PORT_OFFSET + 70), agents=8)
    handle.up(progress=lambda message: print(f"[sandbox] {message}", file=sys.stderr))
    try:
        yield handle.state()
    finally:
        handle.down()


def customers(rng: random.Random, serial: int) -> dict[str, tuple[str, float]]:
    """number -> (tier, value): key accounts all answer; the rest is a usual mix."""
    people: dict[str, tuple[str, float]] = {}
    for i in range(6):
        people[customer_number(CustomerKind.ANSWER, rng.randint(1, 2), rng.randint(2, 3), serial + i)] = ("key", 1000.0)
    for i in range(6, 10):
        people[customer_number(CustomerKind.ANSWER, rng.randint(1, 2), rng.randint(1, 3), serial + i)] = ("gold", 100.0)
    for i in range(10, 70):
        roll = rng.random()
        # Few answer: the predictive pacing, once warm, places more calls than there are agents.
        if roll < 0.35:
            number = customer_number(CustomerKind.ANSWER, rng.randint(1, 2), rng.randint(1, 3), serial + i)
        elif roll < 0.75:
            number = customer_number(CustomerKind.BUSY, 1, 0, serial + i)
        else:
            number = customer_number(CustomerKind.NO_ANSWER, 0, 0, serial + i)
        people[number] = ("standard", 1.0)
    return people


def run_phase(sandbox: SandboxState, tmp: Path, *, phase: int, key_team_logged_in: bool, serial: int) -> dict[str, Any]:
    people = customers(random.Random(serial), serial)
    (tmp / "campaigns").mkdir(exist_ok=True)
    (tmp / "campaigns" / "accounts.yaml").write_text(yaml.safe_dump({
        "name": "accounts",
        "type": "telemarketing",
        "trunk": sandbox.carrier_trunk,
        "caller_id": "+15550100",
        "queue": "sales",
        "dialing": {"mode": "predictive", "ring_timeout": RING_TIMEOUT, "allow_short_ring": True, "max_lines": 20,
                    "abandon_window": "24h"},
        "numbers": {"format": "as_is"},
        "retries": {},
        "tiers": {
            "sources": ["column", "value"],
            "order_by": "tier",
            "routing": {"key": {"queue": "key-accounts", "priority": 10, "fallback_priority": 20,
                                "fallback_after": 1, "max_wait": 20, "wait_for_dedicated": True}},
        },
    }))
    (tmp / "ami-secret").write_text(sandbox.ami.secret)
    phones = {a.id: a for a in sandbox.agents}
    agents = [{"id": a, "interface": phones[a].interface, "queues": ["sales"]} for a in GENERAL]
    if key_team_logged_in:
        agents += [{"id": a, "interface": phones[a].interface, "queues": ["key-accounts"]} for a in KEY_TEAM]
    config = tmp / "dialer.yaml"
    config.write_text(yaml.safe_dump({
        "ami": [{"host": sandbox.ami.host, "port": sandbox.ami.port, "username": sandbox.ami.username,
                 "secret_file": str(tmp / "ami-secret")}],
        "database": {"url": "sqlite+aiosqlite:///dialer.db"},
        "campaign_dir": "campaigns",
        "logging": {"level": "info", "format": "json"},
        "agents": agents,
    }))
    leads = tmp / f"leads-{phase}.csv"
    numbers = list(people)
    random.Random(serial + 1).shuffle(numbers)
    leads.write_text("phone,name,tier,value\n" + "".join(
        f"{n},Customer {n},{people[n][0]},{people[n][1]}\n" for n in numbers))

    def dialer(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "dialer", *args, "--config", str(config)],
                                check=False, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert result.returncode == 0, f"dialer {args}: {result.stdout}\n{result.stderr}"
        return result

    imported = dialer("leads", "import", "accounts", str(leads))
    # The campaign's customers per tier, this phase's and the earlier ones'.
    assert f"key {6 * phase}, gold {4 * phase}, standard {60 * phase}" in imported.stdout, imported.stdout
    run = dialer("run", "--until-done", timeout=150)
    (tmp / f"daemon-{phase}.log").write_text(run.stderr)
    report = json.loads(dialer("report", "accounts", "--json").stdout)
    return {"people": people, "report": report, "lines_in_flight": most_lines(run.stderr)}


def most_lines(log: str) -> int:
    """The most customer calls the daemon had in progress at once, from its log."""
    now = most = 0
    for line in log.splitlines():
        try:
            event = json.loads(line).get("event")
        except ValueError:
            continue
        now += {"call.dialing": 1, "call.finished": -1}.get(event, 0)
        most = max(most, now)
    return most


def what_phones_saw(sandbox: SandboxState, attempts: set[str]) -> dict[str, Counter[str]]:
    """attempt id -> agents whose phone got its INVITE, and the ones that answered it."""
    events = read_agent_events(sandbox)
    answered_calls = {e.call_id for e in events if e.event == "answered"}
    rang: dict[str, Counter[str]] = {}
    for e in events:
        if e.event == "invite" and e.attempt in attempts:
            rang.setdefault(e.attempt, Counter())[("answered " if e.call_id in answered_calls else "rang ") + e.agent] += 1
    return rang


@pytest.mark.timeout(400)
def test_key_accounts_reach_their_agents_and_are_never_dropped(tier_sandbox: SandboxState, tmp_path: Path) -> None:
    sandbox = tier_sandbox
    serial = random.Random().randrange(1000, 7000)
    phases = {
        "key_team_away": run_phase(sandbox, tmp_path, phase=1, key_team_logged_in=False, serial=serial),
        "key_team_in": run_phase(sandbox, tmp_path, phase=2, key_team_logged_in=True, serial=serial + 100),
    }
    carrier = read_carrier_events(sandbox)
    figures = {}
    for name, phase in phases.items():
        people, report = phase["people"], phase["report"]
        calls = [c for c in report["calls"] if c["number"] in people]
        tiers = Counter(people[c["number"]][0] for c in calls)
        key_calls = [c for c in calls if people[c["number"]][0] == "key"]
        answered_numbers = {e.number for e in carrier if e.event == "answered"}
        seen = what_phones_saw(sandbox, {c["attempt"] for c in key_calls})
        figures[name] = {
            "by_tier": {t: {k: v for k, v in f.items() if k != "agents"} for t, f in report["by_tier"].items()},
            "key_agents": {c["attempt"][:8]: sorted(seen.get(c["attempt"], {})) for c in key_calls},
            "lines_in_flight": phase["lines_in_flight"],
        }
        # Every key account answered and was bridged to an agent: none dropped, none abandoned.
        assert len(key_calls) == 6, figures
        assert all(c["number"] in answered_numbers for c in key_calls), figures
        assert all(c["outcome"] == "answered" and c["agent"] for c in key_calls), figures
        assert report["by_tier"]["key"]["abandoned"] == 0, figures
        # The other tiers were dialed at the same time.
        assert tiers == {"key": 6, "gold": 4, "standard": 60}, figures
        phase["seen"] = seen
        phase["key_calls"] = key_calls
    print(json.dumps(figures, indent=2))

    away = phases["key_team_away"]
    # Warm predictive pacing: more calls in progress than agents at some point.
    assert phases["key_team_in"]["lines_in_flight"] > len(GENERAL) + len(KEY_TEAM), figures
    for call in away["key_calls"]:
        # Logged out: the general agents took every key call, and no key phone rang.
        assert call["agent"] in GENERAL, figures
        assert not any(who.split()[1] in KEY_TEAM for who in away["seen"][call["attempt"]]), figures
    assert away["report"]["by_tier"]["key"]["routing"] == {"dedicated_away": 6}, figures

    present = phases["key_team_in"]
    for call in present["key_calls"]:
        rang = {who.split()[1] for who in present["seen"][call["attempt"]]}
        # Each answered key call rang a key-team phone, whoever took it in the end.
        assert rang & set(KEY_TEAM), figures
    routed = present["report"]["by_tier"]["key"]["routing"]  # both phases
    assert routed.get("dedicated", 0) >= 2, figures
    took = Counter(c["agent"] for c in present["key_calls"])
    assert sum(took[a] for a in KEY_TEAM) >= 2, figures
