"""A callback end to end through the sandbox: the agent's disposition (AMI UserEvent
`DialerDisposition`) schedules it, the daemon honours it at its time, and the very
agent who promised it takes the call, though the queue would have picked another.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dialer.sandbox import AmiAccess, CustomerKind, SandboxState, customer_number, read_agent_events
from tests.integration.campaign_lab import make_lab, write_leads

pytestmark = pytest.mark.sandbox

CALLBACK_DELAY = timedelta(seconds=12)


def ami_user_event(ami: AmiAccess, headers: dict[str, str]) -> None:
    """Send one UserEvent as an agent's phone or a CRM would, and check Asterisk took it."""
    with socket.create_connection((ami.host, ami.port), timeout=5) as conn:
        reader = conn.makefile("rb")
        reader.readline()
        lines = [
            f"Action: Login\r\nUsername: {ami.username}\r\nSecret: {ami.secret}\r\nEvents: off\r\n\r\n",
            "Action: UserEvent\r\nActionID: disposition\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n",
        ]
        replies = []
        for text in lines:
            conn.sendall(text.encode())
            reply = []
            while line := reader.readline():
                if line in (b"\r\n", b"\n"):
                    break
                reply.append(line.decode().strip())
            replies.append(reply)
        conn.sendall(b"Action: Logoff\r\n\r\n")
    assert all("Response: Success" in reply for reply in replies), replies


def rows(db: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


@pytest.mark.timeout(150)
def test_a_callback_goes_to_the_promising_agent_at_its_time(sandbox: SandboxState, tmp_path: Path) -> None:
    number = customer_number(CustomerKind.ANSWER, 1, 8, random.Random().randrange(2000, 9999))
    lab = make_lab(
        tmp_path,
        sandbox,
        campaign="callbacks",
        dialing={"mode": "progressive", "ring_timeout": 6, "allow_short_ring": True, "max_lines": 3},
        rules={"callbacks": {"agent_grace": 60}},
    )
    lab.dialer("leads", "import", "callbacks", str(write_leads(tmp_path / "leads.csv", [number])))
    db = tmp_path / "dialer.db"
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as output:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dialer", "run", "--until-done", "--config", str(lab.config)],
            stdout=subprocess.DEVNULL,
            stderr=output,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        first = None
        while time.monotonic() < deadline and first is None:
            bridged = rows(db, "SELECT id, agent_id FROM call_attempts WHERE state = 'bridged'")
            first = bridged[0] if bridged else None
            time.sleep(0.2)
        assert first is not None, log_path.read_text()[-3000:]
        promised_at = datetime.now(UTC) + CALLBACK_DELAY
        # The agent's phone sends the disposition during the call; no Agent header:
        # the callback is promised by the agent who has the call.
        ami_user_event(
            sandbox.ami,
            {
                "UserEvent": "DialerDisposition",
                "Attempt": first["id"],
                "Code": "callback",
                "CallbackAt": promised_at.isoformat(),
            },
        )
        listed = json.loads(lab.dialer("callbacks", "list", "--json").stdout)
        deadline = time.monotonic() + 10
        while not listed and time.monotonic() < deadline:
            time.sleep(0.3)
            listed = json.loads(lab.dialer("callbacks", "list", "--json").stdout)
        assert [(c["number"], c["agent"], c["state"]) for c in listed] == [(number, first["agent_id"], "scheduled")]
        daemon.wait(timeout=90)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
    log = log_path.read_text()
    assert daemon.returncode == 0, log[-3000:]

    attempts = rows(db, "SELECT id, agent_id, outcome, dialed_at, disposition FROM call_attempts ORDER BY dialed_at")
    assert [a["disposition"] for a in attempts] == ["callback", None]
    callback = attempts[1]
    # Honoured within a minute of the promised time, not before it.
    dialed = datetime.fromisoformat(callback["dialed_at"]).replace(tzinfo=UTC)
    assert promised_at <= dialed + timedelta(seconds=1) and dialed - promised_at < timedelta(minutes=1)
    # The same agent took it: the daemon says so, and that agent's phone got the INVITE.
    assert (callback["outcome"], callback["agent_id"]) == ("answered", first["agent_id"])
    invites = [e for e in read_agent_events(sandbox) if e.event == "invite" and e.attempt == callback["id"]]
    assert [e.agent for e in invites] == [first["agent_id"]]
    # Rung directly, not picked by the queue (whose round robin would have moved on).
    assert f'"attempt": "{callback["id"]}", "callback": 1, "interface": "PJSIP/{first["agent_id"]}"' in log
    [done] = json.loads(lab.dialer("callbacks", "list", "--all", "--json").stdout)
    assert (done["state"], done["attempt"]) == ("done", callback["id"])
