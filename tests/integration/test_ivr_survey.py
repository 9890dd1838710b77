"""Issue 6 against the sandbox: an IVR survey with AMD, answered by SIPp customers.

Survey customers (kind 7) say "Hello?" and press RFC 2833 keys at fixed times; an
answering machine (kind 8) streams a long greeting; a person (kind 9) says "Hello?"
and hangs up. SIPp's own log of the keys it sent is the ground truth the stored
answers are checked against.
"""

from __future__ import annotations

import asyncio
import csv
import random
import socket
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.ivr.prompts import prompt_stem
from dialer.sandbox import (
    CustomerKind,
    SandboxState,
    customer_number,
    read_carrier_events,
)
from dialer.sandbox.customers import survey_number
from dialer.store import dnc
from dialer.store.store import Store
from tests.integration.campaign_lab import Lab, write_leads

pytestmark = pytest.mark.sandbox

FLOW = {
    "name": "quick-survey",
    "prompts": {
        "rate": "Rate us, 1 to 5.",
        "recommend": "Recommend us? 1 yes, 2 no.",
        "transfer": "Connecting.",
        "thanks": "Thanks, bye.",
        "invalid": "Invalid.",
        "no_input": "No answer.",
        "bye": "Noted, bye.",
    },
    "invalid": "invalid",
    "no_input": "no_input",
    "opt_out": {"key": "9", "say": "bye"},
    "start": "rating",
    "nodes": {
        "rating": {
            "type": "question", "say": "rate", "answer": {"type": "rating", "min": 1, "max": 5},
            "timeout": 4, "retries": 1, "when": {"1": "retention", "2": "retention"}, "next": "recommend",
        },
        "recommend": {
            "type": "question", "say": "recommend", "answer": {"type": "yes_no"},
            "timeout": 4, "retries": 1, "next": "thanks",
        },
        "retention": {"type": "transfer", "say": "transfer", "queue": "retention"},
        "thanks": {"type": "hangup", "say": "thanks"},
    },
}

# keys (one per slot: 0 nothing, 8 hang up) -> survey status, {question: (value or status, tries)}
SURVEYS: dict[str, tuple[str, dict[str, tuple[str, int | None]]]] = {
    "410": ("completed", {"rating": ("4", None), "recommend": ("yes", None)}),
    "520": ("completed", {"rating": ("5", None), "recommend": ("no", None)}),
    "400": ("completed", {"rating": ("4", None), "recommend": ("(timeout)", 2)}),
    "731": ("completed", {"rating": ("3", 2), "recommend": ("yes", None)}),
    "771": ("completed", {"rating": ("(invalid)", 2), "recommend": ("yes", None)}),
    "900": ("opted_out", {}),
    "200": ("transferred", {"rating": ("2", None)}),
    "480": ("partial", {"rating": ("4", None)}),
}
OUTCOME = {"completed": "completed", "opted_out": "opted_out", "transferred": "answered", "partial": "partial"}


def write_lab(
    tmp: Path, sandbox: SandboxState, campaign: dict[str, Any], *, agents: int, agent_queue: str
) -> Lab:
    (tmp / "campaigns").mkdir()
    (tmp / "ivr").mkdir()
    (tmp / "ivr" / "quick-survey.yaml").write_text(yaml.safe_dump(FLOW))
    base = {
        "trunk": sandbox.carrier_trunk,
        "caller_id": "+15550100",
        "numbers": {"format": "as_is"},
        # One attempt per lead, so the run ends once every customer was called.
        "retries": {"machine": {"delay_minutes": 0, "max_attempts": 1},
                    "abandoned": {"delay_minutes": 0, "max_attempts": 1}},
    }
    (tmp / "campaigns" / f"{campaign['name']}.yaml").write_text(yaml.safe_dump({**base, **campaign}))
    secret = tmp / "ami-secret"
    secret.write_text(sandbox.ami.secret)
    config = tmp / "dialer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": [{"host": sandbox.ami.host, "port": sandbox.ami.port, "username": sandbox.ami.username,
                         "secret_file": str(secret)}],
                "database": {"url": "sqlite+aiosqlite:///dialer.db"},
                "campaign_dir": "campaigns",
                "logging": {"level": "info", "format": "json"},
                "agents": [{"id": a.id, "interface": a.interface, "queues": [agent_queue]}
                           for a in sandbox.agents[:agents]],
                "agi": {"host": "127.0.0.1", "port": sandbox.ports.agi},
                "ivr": {"flow_dir": "ivr", "sounds_dir": sandbox.sounds_dir,
                        "asterisk_sounds_dir": sandbox.asterisk_sounds_dir},
            }
        )
    )
    return Lab(tmp, config, campaign["name"])


def make_ivr_lab(tmp: Path, sandbox: SandboxState) -> Lab:
    return write_lab(
        tmp,
        sandbox,
        {
            "name": "survey",
            "type": "survey",
            "queue": "retention",
            "ivr": "quick-survey",
            "amd": {
                "enabled": True,
                "on_machine": "leave_message",
                "message": "This is Acme with a short survey. We will call again.",
                "false_positives": "count_as_abandoned",
                "false_positive_rate": 0.5,
            },
            # An IVR needs no agent, but the pacing counts agents: 4 lines per free agent.
            "dialing": {"mode": "ratio", "ratio": 4, "ring_timeout": 6, "allow_short_ring": True, "max_lines": 12},
        },
        agents=3,
        agent_queue="retention",
    )


def global_dnc(db: Path) -> set[str]:
    async def read() -> set[str]:
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            return {e.phone for e in await dnc.list_numbers(store, scope="*")}
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.timeout(150)
def test_survey_answers_amd_and_opt_out_through_the_sandbox(sandbox: SandboxState, tmp_path: Path) -> None:
    serial = random.Random().randrange(1000, 9000)
    by_keys = {keys: survey_number(1, keys, serial + i) for i, keys in enumerate(SURVEYS)}
    machine = customer_number(CustomerKind.MACHINE, 1, 30, serial + 50)
    person = customer_number(CustomerKind.HELLO, 1, 3, serial + 51)
    numbers = [*by_keys.values(), machine, person]

    lab = make_ivr_lab(tmp_path, sandbox)
    lab.dialer("leads", "import", "survey", str(write_leads(tmp_path / "leads.csv", numbers)))
    run = lab.dialer("run", "--until-done", timeout=120)
    assert "daemon.all_campaigns_done" in run.stderr

    answers_csv = tmp_path / "answers.csv"
    report: dict[str, Any] = __import__("json").loads(
        lab.dialer("report", "survey", "--json", "--csv", str(answers_csv)).stdout
    )
    outcome = {c["number"]: c["outcome"] for c in report["calls"]}
    attempt_of = {c["number"]: c["attempt"] for c in report["calls"]}
    surveys = {c["number"]: c for c in report["survey"]["calls"]}

    # SIPp's log: the keys each customer really sent, slot by slot.
    sent: dict[str, list[str]] = defaultdict(list)
    for event in read_carrier_events(sandbox):
        if event.event == "dtmf" and event.number in by_keys.values():
            sent[event.number].append(event.key or "")
    # A call the IVR ended before the last slot sent no more: trailing silent slots may be missing.
    for keys, number in by_keys.items():
        script = ["none" if k == "0" else k for k in keys.split("8")[0]]
        while script and script[-1] == "none":
            script.pop()
        assert sent[number][: len(script)] == script, f"SIPp sent {sent[number]} for {keys}"
        assert set(sent[number][len(script) :]) <= {"none"}, f"SIPp sent {sent[number]} for {keys}"

    wrong = {}
    for keys, number in by_keys.items():
        status, expected = SURVEYS[keys]
        got = surveys.get(number, {})
        if got.get("status") != status or got.get("answers") != {q: v for q, (v, _) in expected.items()}:
            wrong[keys] = got
        if outcome[number] != OUTCOME[status]:
            wrong[f"{keys} outcome"] = outcome[number]
    assert not wrong, f"stored surveys differ from what the customers pressed: {wrong}"

    # Tries: the customer who pressed a wrong key first answered on the second try; the
    # timeout and the two wrong keys used both tries.
    with open(answers_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    tries = {(r["number"], r["question"]): int(r["tries"]) for r in rows if r["question"]}
    for keys, (_, expected) in SURVEYS.items():
        for question, (_, want) in expected.items():
            if want is not None:
                assert tries[(by_keys[keys], question)] == want, (keys, question)
    assert {r["number"] for r in rows} == {n for n in by_keys.values()} | {person}

    # Distribution per question, as `dialer report` shows it.
    rating = report["survey"]["questions"]["rating"]
    assert rating["values"] == {"2": 1, "3": 1, "4": 3, "5": 1}
    assert (rating["invalid"], rating["timeout"]) == (1, 0)
    assert report["survey"]["questions"]["recommend"]["values"] == {"no": 1, "yes": 3}

    # Pressing 9: on the do-not-call list, and nobody else.
    assert global_dnc(tmp_path / "dialer.db") == {by_keys["900"]}

    # AMD: the long greeting is a machine, counted apart; a short hello is a person.
    amd = report["amd"]["by_attempt"]
    assert outcome[machine] == "machine"
    assert amd[attempt_of[machine]] == "MACHINE"
    assert amd[attempt_of[person]] == "HUMAN"
    assert all(amd[attempt_of[n]] == "HUMAN" for n in by_keys.values())
    assert outcome[person] == "partial"  # said hello, hung up during the first question
    assert report["amd"]["machine"] == 1
    assert report["amd"]["estimated_false_positives"] == 1  # ceil(1 * 0.5), counted as abandoned


ABANDON_TEXT = "This was Acme. Call us back on 555 0100. Goodbye."


def empty_queue(sandbox: SandboxState, queue: str) -> None:
    """Take every sandbox phone out of `queue`: the session's other tests may have left some there."""
    with socket.create_connection((sandbox.ami.host, sandbox.ami.port), timeout=5) as conn:
        actions = [f"Action: Login\r\nUsername: {sandbox.ami.username}\r\nSecret: {sandbox.ami.secret}\r\nEvents: off"]
        actions += [f"Action: QueueRemove\r\nQueue: {queue}\r\nInterface: {a.interface}" for a in sandbox.agents]
        actions.append("Action: Logoff")
        conn.sendall("".join(f"{a}\r\nActionID: {i}\r\n\r\n" for i, a in enumerate(actions)).encode())
        reader = conn.makefile("rb")
        while reader.readline():  # Asterisk closes the connection after the Logoff
            pass


@pytest.mark.timeout(90)
def test_no_free_agent_plays_the_rendered_abandon_message(sandbox: SandboxState, tmp_path: Path) -> None:
    lab = write_lab(
        tmp_path,
        sandbox,
        {
            "name": "sales-amd",
            "type": "telemarketing",
            "queue": "sales",
            "abandon_text": ABANDON_TEXT,
            "amd": {"enabled": True, "on_machine": "hangup"},
            # One agent, three lines: two live customers find nobody free within 2 s. The
            # pacing would never risk that under a 3 % ceiling: this lab lifts it.
            "dialing": {"mode": "ratio", "ratio": 3, "ring_timeout": 6, "allow_short_ring": True, "max_lines": 3,
                        "agent_wait": 2, "abandon_limit": 1.0, "abandon_target": 1.0, "override_ceiling": True},
        },
        agents=1,
        agent_queue="sales",
    )
    empty_queue(sandbox, "sales")
    serial = random.Random().randrange(1000, 9000)
    people = [customer_number(CustomerKind.HELLO, 1, 8, serial + i) for i in range(3)]
    lab.dialer("leads", "import", "sales-amd", str(write_leads(tmp_path / "leads.csv", people)))
    run = lab.dialer("run", "--until-done", timeout=60)
    assert "daemon.all_campaigns_done" in run.stderr

    report = lab.report()
    assert report["outcomes"] == {"abandoned": 2, "answered": 1}
    assert set(report["amd"]["by_attempt"].values()) == {"HUMAN"}
    abandoned = [c["attempt"] for c in report["calls"] if c["outcome"] == "abandoned"]

    # Asterisk played the rendered message, from where the daemon put it, once per abandoned call.
    stem = prompt_stem(ABANDON_TEXT, "en")
    assert (Path(sandbox.sounds_dir) / f"{stem}.wav").is_file()
    log = Path(sandbox.asterisk_log).read_text(errors="replace")
    assert log.count(f"Playing '{sandbox.asterisk_sounds_dir}/{stem}") == len(abandoned) == 2
