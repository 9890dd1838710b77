"""Customers calling the campaign's number back, against the real sandbox (issue 15).

One sandbox with three agent phones: agent1 is the key-account team (queue
key-accounts), agent2 the general pool (sales, the campaign's queue), agent3 takes
the callers the dialer does not know (support, the campaign's inbound default queue).

1. Outbound: the daemon dials S and A at once (ratio 2, one general agent); S takes
   agent2, A answers later and is abandoned. A's lead is due again 24 s later.
2. A calls the campaign's DID back: agent2 (not the key team) gets the call with A's
   screen-pop headers; the call answers A's abandoned attempt; A's lead is done and
   never dialed again (the test runs well past the retry time). agent2, signed in to
   the desk, sees A's pop marked as the callback of that abandoned attempt, then wrap-up.
3. With agent1 busy (key customer K2) and agent2 busy (S), W (standard) waits in sales;
   K (key) calls after W: the key team is busy, so K goes to the general pool at the
   raised priority and reaches agent2 before W, who waited longer.
4. Unknown and hostile caller IDs go to the default queue (agent3).
5. The daemon killed: a caller still reaches a queue (the dialplan's own default, sales).
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dialer.config.tiers import TierRouteConfig
from dialer.http.desk_auth import Role, set_user
from dialer.sandbox import (
    AgentEvent,
    CustomerKind,
    Sandbox,
    SandboxPorts,
    SandboxState,
    customer_number,
    read_agent_events,
    read_carrier_events,
)
from dialer.sandbox.inbound_caller import InboundCall, call_in, from_header
from tests.integration.conftest import PORT_OFFSET

pytestmark = pytest.mark.sandbox

DID = "+15550199"
CALLER_ID_NUMBER = "+15550100"
WINBACK_DID = "+15550177"
RETRY_ABANDONED_S = 24
DESK_SECRET = "agent-two-desk-secret"
KEY_ROUTING: dict[str, Any] = {"queue": "key-accounts", "priority": 10, "fallback_priority": 20, "fallback_after": 1}
if "lend_to_general" in TierRouteConfig.model_fields:
    # The outbound phase needs the key team to stay out of the general queue, so that
    # the general pool is one agent and A is abandoned.
    KEY_ROUTING["lend_to_general"] = False


@pytest.fixture(scope="module")
def inbound_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    # +5: clear of the session sandbox's ports (+0) that run beside it.
    handle = Sandbox(tmp_path_factory.mktemp("inbound-sandbox"), ports=SandboxPorts.offset(PORT_OFFSET + 5), agents=3)
    handle.up(progress=lambda message: print(f"[sandbox] {message}", file=sys.stderr))
    try:
        yield handle.state()
    finally:
        handle.down()


def rows(db: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    with sqlite3.connect(db, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, args).fetchall()


def wait_until(check: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text(errors='replace')[-4000:]}")


class Lab:
    def __init__(self, sandbox: SandboxState, tmp: Path) -> None:
        self.sandbox = sandbox
        self.tmp = tmp
        self.db = tmp / "dialer.db"
        self.log = tmp / "daemon.log"
        self.config = tmp / "dialer.yaml"
        serial = random.Random().randrange(1000, 8000)
        self.numbers = {
            "S": customer_number(CustomerKind.ANSWER, 1, 10, serial),
            "A": customer_number(CustomerKind.ANSWER, 4, 8, serial + 1),
            "W": customer_number(CustomerKind.NOT_FOUND, 0, 0, serial + 2),
            "K": customer_number(CustomerKind.NOT_FOUND, 0, 0, serial + 3),
            "K2": customer_number(CustomerKind.NOT_FOUND, 0, 0, serial + 4),
        }
        self.unknown = customer_number(CustomerKind.ANSWER, 1, 1, serial + 5)
        self.daemon: subprocess.Popen[bytes] | None = None
        self.callers: list[InboundCall] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.http_port = probe.getsockname()[1]

    def write(self) -> None:
        sandbox = self.sandbox
        (self.tmp / "campaigns").mkdir()
        (self.tmp / "campaigns" / "renewals.yaml").write_text(yaml.safe_dump({
            "name": "renewals",
            "type": "telemarketing",
            "trunk": sandbox.carrier_trunk,
            "caller_id": f'"Acme" <{CALLER_ID_NUMBER}>',
            "queue": "sales",
            "dialing": {"mode": "ratio", "ratio": 2, "ring_timeout": 8, "allow_short_ring": True, "max_lines": 2,
                        # A lab campaign that must abandon a call from its first one.
                        "agent_wait": 1, "abandon_limit": 1.0, "abandon_target": 0.5, "override_ceiling": True},
            "numbers": {"format": "as_is"},
            "retries": {"abandoned": {"delay_minutes": RETRY_ABANDONED_S / 60, "max_attempts": 3}},
            "tiers": {"sources": ["column"], "routing": {"key": KEY_ROUTING}},
            "inbound": {"dids": [DID], "default_queue": "support", "max_wait": 60},
        }))
        # Disabled (it dials nobody) and without agents (queue retention has none): its
        # callers still reach the daemon, hear that nobody is free and may ask for a callback.
        (self.tmp / "campaigns" / "winback.yaml").write_text(yaml.safe_dump({
            "name": "winback",
            "type": "callback",
            "enabled": False,
            "trunk": sandbox.carrier_trunk,
            "caller_id": WINBACK_DID,
            "queue": "retention",
            "numbers": {"format": "as_is"},
            "inbound": {"max_wait": 2, "callback_key": "5", "callback_after_minutes": 60},
        }))
        (self.tmp / "ami-secret").write_text(sandbox.ami.secret)
        phones = {a.id: a.interface for a in sandbox.agents}
        self.config.write_text(yaml.safe_dump({
            "ami": [{"host": sandbox.ami.host, "port": sandbox.ami.port, "username": sandbox.ami.username,
                     "secret_file": str(self.tmp / "ami-secret")}],
            "database": {"url": "sqlite+aiosqlite:///dialer.db"},
            "campaign_dir": "campaigns",
            "logging": {"level": "info", "format": "json"},
            "agi": {"port": sandbox.ports.agi},
            "agents": [
                {"id": "agent1", "interface": phones["agent1"], "queues": ["key-accounts"]},
                {"id": "agent2", "interface": phones["agent2"], "queues": ["sales"]},
                {"id": "agent3", "interface": phones["agent3"], "queues": ["support"]},
            ],
            "http": {"port": self.http_port, "token": "d" * 32, "desk_users_file": "desk-users.yaml"},
        }))
        set_user(self.tmp / "desk-users.yaml", "agent2", Role.agent, DESK_SECRET)
        tiers = {"S": "standard", "A": "standard", "W": "standard", "K": "key", "K2": "key"}
        # S before A: dialed together, S answers first and takes the only general agent.
        (self.tmp / "leads.csv").write_text("phone,name,customer_id,tier\n" + "".join(
            f"{self.numbers[who]},Customer {who},CUST-{who},{tiers[who]}\n" for who in ("S", "A", "W", "K", "K2")))

    def dialer(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "dialer", *args, "--config", str(self.config)],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert result.returncode == 0, f"dialer {args}: {result.stdout}\n{result.stderr}"
        return result

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "dialer", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=output, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            os.killpg(self.daemon.pid, signal.SIGKILL)
            self.daemon.wait(10)

    def call(self, name: str, from_value: str, *, talk_s: float, did: str = DID, key: str | None = None,
             key_after_s: float = 0.0) -> InboundCall:
        caller = call_in(self.sandbox, did=did, from_value=from_value, talk_s=talk_s, workdir=self.tmp, name=name,
                         key=key, key_after_s=key_after_s)
        self.callers.append(caller)
        return caller

    def hang_up_all(self) -> None:
        for caller in self.callers:
            if caller.process.poll() is None:
                caller.process.terminate()
            caller.process.wait(10)

    def agent_events(self, since: float, agent: str | None = None) -> list[AgentEvent]:
        return [e for e in read_agent_events(self.sandbox)
                if e.at is not None and e.at >= since and (agent is None or e.agent == agent)]

    def answered_by(self, agent: str, since: float, count: int = 1) -> bool:
        return sum(1 for e in self.agent_events(since, agent) if e.event == "answered") >= count

    def headers(self, since: float, agent: str) -> list[dict[str, str]]:
        return [e.headers for e in self.agent_events(since, agent) if e.event == "headers"]

    def desk(self) -> tuple[httpx.Client, str]:
        """agent2 signed in to the desk: the client (its session cookie) and the CSRF token."""
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=5)
        wait_until(lambda: _reachable(client), 20, "the daemon's HTTP server", self.log)
        signed = client.post("/desk/sign-in", data={"user": "agent2", "secret": DESK_SECRET})
        assert signed.status_code == 303, signed.text
        page = client.get("/desk/agent").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return client, csrf

    def inbound(self, caller: str | None = None) -> list[sqlite3.Row]:
        if caller is None:
            return rows(self.db, "SELECT * FROM inbound_calls ORDER BY started_at")
        return rows(self.db, "SELECT * FROM inbound_calls WHERE caller = ? ORDER BY started_at", caller)


def _reachable(client: httpx.Client) -> bool:
    try:
        return client.get("/desk/sign-in").status_code == 200
    except httpx.HTTPError:
        return False


def ring_delay(lab: Lab, caller: InboundCall, since: float, agent: str) -> float:
    """Seconds from Asterisk answering the caller to the agent's phone getting the INVITE (SIPp clocks)."""
    answered_at = float(caller.log.read_text().split("\n")[0].split()[-1])
    rang_at = next(e.at for e in lab.agent_events(since, agent) if e.event == "invite" and e.at is not None)
    return rang_at - answered_at


@pytest.mark.timeout(300)
def test_customers_calling_back_reach_the_right_agents(inbound_sandbox: SandboxState, tmp_path: Path) -> None:
    lab = Lab(inbound_sandbox, tmp_path)
    lab.write()
    lab.dialer("leads", "import", "renewals", str(tmp_path / "leads.csv"))
    (tmp_path / "winback.csv").write_text(f"phone,customer_id\n{lab.numbers['W']},CUST-W\n")
    lab.dialer("leads", "import", "winback", str(tmp_path / "winback.csv"))
    n = lab.numbers
    lab.start()
    try:
        # 1. Outbound: A is abandoned while S talks to agent2, the only general agent.
        abandoned = wait_until(
            lambda: rows(lab.db, "SELECT id, ended_at FROM call_attempts WHERE phone = ? AND outcome = 'abandoned'",
                         n["A"]),
            40, "A's abandoned call", lab.log)
        abandoned_at = time.time()
        wait_until(lambda: rows(lab.db, "SELECT 1 FROM call_attempts WHERE phone = ? AND state = 'ended'", n["S"]),
                   30, "S's call to end", lab.log)
        assert rows(lab.db, "SELECT state FROM leads WHERE phone = ?", n["A"])[0]["state"] == "pending"

        # 2. A calls the campaign's DID back: the general pool, with A's screen pop.
        desk, csrf = lab.desk()
        since = time.time()
        back = lab.call("A", from_header(n["A"], '"Customer A"'), talk_s=4)
        wait_until(lambda: lab.answered_by("agent2", since), 20, "agent2 to answer A's callback", lab.log)
        print(f"daemon up: the agent's phone rang {ring_delay(lab, back, since, 'agent2'):.3f} s after the answer")
        assert lab.headers(since, "agent2")[0] == {"campaign": "renewals", "tier": "standard", "customer": "CUST-A"}
        assert not lab.agent_events(since, "agent1"), "a standard customer rang the key team"
        [call_a] = wait_until(lambda: [r for r in lab.inbound(n["A"]) if r["bridged_at"]], 10, "A's inbound row", lab.log)
        assert (call_a["answers_attempt"], call_a["answers_outcome"]) == (abandoned[0]["id"], "abandoned")
        assert (call_a["agent_id"], call_a["queue"], call_a["routing"], call_a["tier"]) == (
            "agent2", "sales", "general", "standard")
        lead = rows(lab.db, "SELECT state, final_reason FROM leads WHERE phone = ?", n["A"])[0]
        assert (lead["state"], lead["final_reason"]) == ("done", "inbound_callback")
        # The desk: A's pop on agent2's page, as the callback of the abandoned attempt.
        me = desk.get("/desk/api/me").json()
        assert me["call"]["attempt"] == call_a["id"], me
        assert me["call"]["inbound"] == {"caller": call_a["caller"], "known": True,
                                         "answers_attempt": abandoned[0]["id"], "answers_outcome": "abandoned"}
        assert me["call"]["screen_pop"]["customer"]["id"] == "CUST-A"
        page = desk.get("/desk/agent").text
        assert "Customer A" in page and "was abandoned" in page
        # A hangs up: wrap-up (paused in the queues) until agent2 presses Ready, then off the desk
        # so the rest of the test sees a phone-only agent.
        wait_until(lambda: desk.get("/desk/api/me").json()["state"] == "wrapup", 15, "agent2's wrap-up", lab.log)
        assert desk.post("/desk/api/ready", headers={"X-CSRF-Token": csrf}).json()["state"] == "ready"
        assert desk.post("/desk/sign-out", data={"csrf": csrf}).status_code == 303
        desk.close()
        time.sleep(1)

        # 3. Key team busy: K reaches the general pool ahead of W, who called first.
        start = time.time()
        lab.call("K2", from_header(n["K2"]), talk_s=40, did=CALLER_ID_NUMBER)
        wait_until(lambda: lab.answered_by("agent1", start), 20, "agent1 to take K2", lab.log)
        lab.call("S", from_header(n["S"]), talk_s=12)
        wait_until(lambda: lab.answered_by("agent2", start), 20, "agent2 to take S", lab.log)
        # A caller's time on the line counts from the answer (at once, before the queue).
        lab.call("W", from_header(n["W"]), talk_s=45)
        wait_until(lambda: lab.inbound(n["W"]), 10, "W's inbound row", lab.log)
        time.sleep(1.5)
        lab.call("K", from_header(n["K"]), talk_s=20)
        wait_until(lambda: lab.answered_by("agent2", start, count=3), 40, "agent2 to take K and W", lab.log)
        served = [h["customer"] for h in lab.headers(start, "agent2")]
        assert served[:3] == ["CUST-S", "CUST-K", "CUST-W"], served
        [call_k] = lab.inbound(n["K"])
        assert (call_k["routing"], call_k["queue"], call_k["tier"]) == ("dedicated_busy", "sales", "key")
        [call_k2] = lab.inbound(n["K2"])
        assert (call_k2["routing"], call_k2["agent_id"]) == ("dedicated", "agent1")
        assert lab.headers(start, "agent1")[0] == {"campaign": "renewals", "tier": "key", "customer": "CUST-K2"}

        # 4. Unknown and hostile caller IDs: the default queue, no customer's headers.
        hostile = {
            "unknown": from_header(lab.unknown),
            "anonymous": '"Anonymous" <sip:anonymous@anonymous.invalid>',
            "no_user": from_header(None),
            "quotes": r'''"Bob \"); DROP TABLE leads;--" <sip:+1555'0100@127.0.0.1>''',
            "500_digits": from_header("9" * 500),
        }
        for name, value in hostile.items():
            since = time.time()
            lab.call(name, value, talk_s=2)
            wait_until(lambda: lab.answered_by("agent3", since), 20, f"agent3 to take the {name} caller", lab.log)
            assert lab.headers(since, "agent3")[0] == {"campaign": "renewals", "tier": "", "customer": ""}, name
            time.sleep(2.5)
        strangers = [r for r in lab.inbound() if r["customer_id"] is None]
        assert len(strangers) == len(hostile)
        assert {(r["routing"], r["queue"], r["agent_id"]) for r in strangers} == {("unknown", "support", "agent3")}
        assert [r["caller"] for r in strangers] == [lab.unknown, None, None, None, None]

        # No agent for the winback campaign: W hears the message and presses 5 for a callback
        # (Read() starts about 2 s after the answer: max_wait, then the no-agent message).
        caller = lab.call("W_callback", from_header(n["W"]), talk_s=6, did=WINBACK_DID, key="5", key_after_s=4)
        caller.wait(30)
        assert "dtmf" in caller.events(), caller.events()
        [asked] = wait_until(lambda: rows(lab.db, "SELECT * FROM inbound_calls WHERE did = ?", WINBACK_DID),
                             10, "W's winback row", lab.log)
        assert (asked["outcome"], asked["routing"], asked["queue"], asked["agent_id"]) == (
            "callback_requested", "general", "retention", None)
        callbacks = json.loads(lab.dialer("callbacks", "list", "--campaign", "winback", "--json").stdout)
        assert [(c["number"], c["state"]) for c in callbacks] == [(n["W"], "scheduled")], callbacks
        assert callbacks[0]["id"] == asked["callback_id"]

        # The lead A is not dialed again, long past its retry time.
        wait_until(lambda: time.time() > abandoned_at + RETRY_ABANDONED_S + 5, RETRY_ABANDONED_S + 10,
                   "A's retry time to pass", lab.log)
        assert [e.event for e in read_carrier_events(inbound_sandbox) if e.number == n["A"] and e.event == "invite"] == [
            "invite"]
        report = json.loads(lab.dialer("report", "renewals", "--json").stdout)
        print(json.dumps(report["inbound"], indent=2))
        assert report["inbound"]["abandons_closed"] == 1
        assert report["inbound"]["by_tier"]["key"]["routing"] == {"dedicated": 1, "dedicated_busy": 1}
        assert "inbound callbacks" in lab.dialer("report", "renewals").stdout

        # 5. The daemon killed: the dialplan still queues the caller (its own default, sales).
        for caller in lab.callers:  # every earlier caller has hung up: agent2 is free
            caller.wait(60)
        time.sleep(1)
        lab.kill()
        since = time.time()
        down = lab.call("daemon_down", from_header(n["A"]), talk_s=2)
        wait_until(lambda: lab.answered_by("agent2", since), 20, "agent2 to take a call with the daemon down", lab.log)
        assert lab.headers(since, "agent2")[0]["campaign"] == ""
        print(f"daemon down: the agent's phone rang {ring_delay(lab, down, since, 'agent2'):.3f} s after the answer")
    finally:
        lab.kill()
        lab.hang_up_all()
