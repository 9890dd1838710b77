"""The walking skeleton's proof: a campaign dialed end to end through the real sandbox.

The daemon runs as a user runs it (`dialer leads import`, `dialer run`,
`dialer report --json`); SIPp's own logs are the ground truth it is checked against.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from dialer.sandbox import CustomerKind, SandboxState, customer_number, parse_customer_number
from tests.integration.campaign_lab import make_lab, sipp_view, write_leads

pytestmark = pytest.mark.sandbox

RING_TIMEOUT = 6

# kind, ring seconds, talk seconds, how many
MIX = [
    (CustomerKind.ANSWER, 1, 3, 6),
    (CustomerKind.ANSWER, 2, 2, 6),
    (CustomerKind.ANSWER, 3, 4, 5),
    (CustomerKind.ANSWER, RING_TIMEOUT + 3, 3, 1),  # answers too late: no answer
    (CustomerKind.BUSY, 1, 0, 4),
    (CustomerKind.NO_ANSWER, 0, 0, 3),
    (CustomerKind.REJECT, 1, 0, 3),
    (CustomerKind.CONGESTION, 1, 0, 2),
    (CustomerKind.NOT_FOUND, 0, 0, 2),
]


def expected_outcome(number: str) -> str:
    behaviour = parse_customer_number(number)
    if behaviour.kind is CustomerKind.ANSWER and behaviour.ring_s >= RING_TIMEOUT:
        return "no_answer"
    return behaviour.expected_outcome


@pytest.mark.timeout(240)
def test_a_campaign_runs_end_to_end(sandbox: SandboxState, tmp_path: Path) -> None:
    serial = random.Random().randrange(2000, 8000)
    numbers = []
    for kind, ring, talk, count in MIX:
        for _ in range(count):
            numbers.append(customer_number(kind, ring, talk, serial))
            serial += 1
    random.Random(serial).shuffle(numbers)
    assert len(numbers) >= 30

    lab = make_lab(
        tmp_path,
        sandbox,
        campaign="skeleton",
        dialing={"mode": "progressive", "ring_timeout": RING_TIMEOUT, "allow_short_ring": True, "max_lines": 10},
    )
    imported = lab.dialer("leads", "import", "skeleton", str(write_leads(tmp_path / "leads.csv", numbers)))
    assert f"imported {len(numbers)} lead(s)" in imported.stdout

    run = lab.dialer("run", "--until-done", timeout=200)
    assert "daemon.all_campaigns_done" in run.stderr

    report = lab.report()
    calls = report["calls"]

    # One attempt per lead, each with the outcome its simulated customer was scripted to give.
    assert sorted(c["number"] for c in calls) == sorted(numbers)
    wrong = {c["number"]: c["outcome"] for c in calls if c["outcome"] != expected_outcome(c["number"])}
    assert not wrong, f"outcomes differ from the script: {wrong}"

    # Every answered call reached an agent: the dialer says which, and that
    # agent's phone got the INVITE carrying the attempt's id.
    answered = [c for c in calls if c["outcome"] == "answered"]
    assert all(c["agent"] in {a.id for a in sandbox.agents} for c in answered)
    seen = sipp_view(sandbox, set(numbers))
    assert {c["attempt"] for c in answered} <= set(seen.agent_attempts)
    assert all(seen.agent_attempts[c["attempt"]] == 1 for c in answered)
    assert report["abandoned"] == 0

    # No number was dialed twice.
    assert seen.invites == Counter({n: 1 for n in numbers})

    # The report's counts match what the SIPp carrier saw.
    outcomes = report["outcomes"]
    assert outcomes.get("answered", 0) + outcomes.get("abandoned", 0) == sum(seen.answered.values())
    assert outcomes.get("busy", 0) == seen.finals[486]
    assert outcomes.get("rejected", 0) == seen.finals[603]
    assert outcomes.get("congestion", 0) == seen.finals[503]
    assert outcomes.get("failed", 0) == seen.finals[404]
    assert outcomes.get("no_answer", 0) == sum(seen.cancelled.values())
    assert report["leads"] == {"total": len(numbers), "pending": 0, "in_progress": 0, "done": len(numbers)}
