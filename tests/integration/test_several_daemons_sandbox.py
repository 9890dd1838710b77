"""Several daemons on one PostgreSQL against two real sandboxes (issue 13): two `dialer run` processes run
one campaign spread over two Asterisk servers; the one holding the campaign's lease is killed with -9
mid-campaign, then one Asterisk is restarted. From both SIPp carriers' logs and the database: no number
dialed twice inside its retry delay, every lead accounted for, every attempt with one final row, and the
surviving daemon took the campaign over within the bounded takeover time and finished it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.core.ownership import Holder
from dialer.sandbox import CustomerKind, Sandbox, SandboxPorts, customer_number, read_carrier_events
from dialer.store import campaign_owners
from dialer.store.store import Store
from tests.integration.conftest import PORT_OFFSET
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.sandbox

LEADS = 10
TALK_S = 20  # calls long enough to be still up when the survivor takes over
TAKEOVER_AFTER, HEARTBEAT = 6, 1
INTERRUPTED_DELAY_S = 3.0  # a call the restart cut is due again after this


@pytest.fixture(scope="module")
def two_sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Sandbox]]:
    # Two offsets 100 apart, clear of the session's own sandbox at PORT_OFFSET (alive all
    # session long in a full run) and of the other tests' (+5 to +100).
    a = Sandbox(tmp_path_factory.mktemp("sandbox_a"), ports=SandboxPorts.offset(PORT_OFFSET + 500), agents=3)
    b = Sandbox(tmp_path_factory.mktemp("sandbox_b"), ports=SandboxPorts.offset(PORT_OFFSET + 600), agents=3)
    say = lambda message: print(f"[sandbox] {message}", file=sys.stderr)  # noqa: E731
    a.up(progress=say)
    try:
        b.up(progress=say)
        try:
            yield a, b
        finally:
            b.down()
    finally:
        a.down()


async def _holder(url: str, name: str) -> Holder | None:
    store = await Store.open(url, upgrade=False)
    try:
        campaign_id = await store.sync_campaign(name, "telemarketing")
        return await campaign_owners.holder(store, campaign_id)
    finally:
        await store.close()


async def _rows(url: str, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    store = await Store.open(url, upgrade=False)
    try:
        campaign_id = await store.sync_campaign(name, "telemarketing")
        return await store.attempts(campaign_id), await store.leads(campaign_id)
    finally:
        await store.close()


def owner(url: str) -> str | None:
    holder = asyncio.run(_holder(url, "shared"))
    return None if holder is None else holder.owner


def logged(log: str, event: str) -> list[dict[str, Any]]:
    """The daemon's JSON log lines for one event, each with its time as epoch seconds (`at`)."""
    entries = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            entry["at"] = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            entries.append(entry)
    return entries


@pytest.mark.timeout(600)
def test_two_daemons_one_killed_then_one_asterisk_restarted(
    two_sandboxes: tuple[Sandbox, Sandbox], postgres_server: PostgresServer, tmp_path: Path
) -> None:
    sandbox_a, sandbox_b = two_sandboxes
    a, b = sandbox_a.state(), sandbox_b.state()
    url = postgres_server.database_url(migrated=False)
    serial = random.Random().randrange(1000, 9000 - LEADS)
    numbers = [customer_number(CustomerKind.ANSWER, 1, TALK_S, serial + i) for i in range(LEADS)]
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "shared.yaml").write_text(yaml.safe_dump({
        "name": "shared", "type": "telemarketing", "trunk": a.carrier_trunk, "caller_id": "+15550100",
        "queue": "sales", "numbers": {"format": "as_is"},
        # Fewer lines than agents: while the first daemon dials, an agent is free that a second
        # daemon dialing out of turn would call for.
        "dialing": {"mode": "progressive", "max_lines": 2, "ring_timeout": 30, "allow_short_ring": True,
                    "agent_wait": 30},
        "retries": {"interrupted": {"delay_minutes": INTERRUPTED_DELAY_S / 60, "max_attempts": 3},
                    "refused": {"delay_minutes": 0, "max_attempts": 5}},
    }))
    servers = []
    for name, state in (("a", a), ("b", b)):
        secret = tmp_path / f"ami-secret-{name}"
        secret.write_text(state.ami.secret)
        servers.append({"name": name, "host": state.ami.host, "port": state.ami.port,
                        "username": state.ami.username, "secret_file": str(secret), "max_lines": 3,
                        "ping_interval": 1, "action_timeout": 3})
    agents = [{"id": p.id, "interface": p.interface, "queues": ["sales"], "server": "a"} for p in a.agents[:2]]
    agents += [{"id": f"b-{p.id}", "interface": p.interface, "queues": ["sales"], "server": "b"} for p in b.agents[2:3]]
    configs = {}
    for daemon_id in ("first", "second"):
        configs[daemon_id] = tmp_path / f"{daemon_id}.yaml"
        configs[daemon_id].write_text(yaml.safe_dump({
            "ami": servers, "database": {"url": url}, "campaign_dir": "campaigns",
            "logging": {"level": "info", "format": "json"}, "agents": agents, "tick_interval": 0.2,
            "daemons": {"id": daemon_id, "takeover_after": TAKEOVER_AFTER, "heartbeat": HEARTBEAT},
        }))
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n" + "".join(f"{n}\n" for n in numbers))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = [sys.executable, "-m", "dialer"]
    # The import migrates the empty database before either daemon starts.
    subprocess.run([*run, "leads", "import", "shared", str(leads), "--config", str(configs["first"])], check=True,
                   env=env, capture_output=True, timeout=60)
    before = {"a": len(read_carrier_events(a)), "b": len(read_carrier_events(b))}

    def invites() -> list[tuple[str, float]]:
        return sorted(
            (e.number, e.at or 0.0)
            for name, state in (("a", a), ("b", b))
            for e in read_carrier_events(state)[before[name]:]
            if e.event == "invite" and e.number in numbers
        )

    logs = {name: tmp_path / f"{name}.log" for name in configs}
    daemons: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        with logs[name].open("ab") as output:
            daemons[name] = subprocess.Popen([*run, "run", "--until-done", "--config", str(configs[name])],
                                             stdout=subprocess.DEVNULL, stderr=output, env=env, start_new_session=True)

    def tails() -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-2500:]}" for n, p in logs.items() if p.exists())

    try:
        start("first")
        deadline = time.monotonic() + 60
        while owner(url) != "first":
            assert daemons["first"].poll() is None and time.monotonic() < deadline, tails()
            time.sleep(0.2)
        start("second")  # stands by: the first holds the campaign
        deadline = time.monotonic() + 120
        while not (
            any(e.event == "invite" for e in read_carrier_events(a)[before["a"]:])
            and any(e.event == "invite" for e in read_carrier_events(b)[before["b"]:])
        ):
            assert daemons["first"].poll() is None and time.monotonic() < deadline, tails()
            time.sleep(0.2)
        time.sleep(3.0)  # calls up on both servers, a free agent, the second daemon logged in
        assert owner(url) == "first"
        os.killpg(daemons["first"].pid, signal.SIGKILL)
        daemons["first"].wait()
        killed_at = time.time()
        dead_lease = asyncio.run(_holder(url, "shared"))
        assert dead_lease is not None and dead_lease.owner == "first"
        dialed_before_kill = len(invites())

        deadline = time.monotonic() + TAKEOVER_AFTER + 30
        while owner(url) != "second":
            assert daemons["second"].poll() is None and time.monotonic() < deadline, tails()
            time.sleep(0.1)
        taken_over_at = time.time()
        # The Asterisk restart comes after the takeover: the survivor rides it out as one daemon does.
        restarted_at = time.time()
        sandbox_b.restart_asterisk()
        assert daemons["second"].wait(timeout=300) == 0, tails()
    finally:
        for process in daemons.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    attempts, lead_rows = asyncio.run(_rows(url, "shared"))
    seen = f"kill {killed_at}, takeover {taken_over_at}, restart {restarted_at}; attempts: " + "\n".join(
        str({k: v for k, v in r.items() if k in ("id", "phone", "state", "outcome", "server", "cut_short",
                                                  "dialed_at", "ended_at")}) for r in attempts
    )
    # The survivor took over within the bound: the dead lease's length, a heartbeat and the poll.
    assert taken_over_at - killed_at <= TAKEOVER_AFTER + HEARTBEAT + 2.0, seen
    after_takeover = [at for _, at in invites()[dialed_before_kill:] if at >= taken_over_at]
    assert after_takeover, f"the survivor never dialed\n{seen}\n{tails()}"
    # Every lead accounted for, each to its customer's answer.
    assert {r["phone"]: (r["state"], r["final_outcome"]) for r in lead_rows} == {
        n: ("done", "answered") for n in numbers
    }, seen
    # Every attempt has its one final row.
    assert all(r["state"] == "ended" and r["outcome"] and r["ended_at"] for r in attempts), seen
    assert len({r["id"] for r in attempts}) == len(attempts)
    # Both carriers' INVITEs are the attempts dialed, one each: nothing dialed behind the database's back.
    dialed = [r for r in attempts if r["outcome"] not in ("not_sent", "refused")]
    assert Counter(n for n, _ in invites()) == Counter(r["phone"] for r in dialed), seen
    # No number dialed twice inside its retry delay: a number's next attempt comes only after the
    # last one ended, and then only after a call a fault cut (interrupted), its delay later.
    by_number: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(dialed, key=lambda r: r["dialed_at"]):
        by_number.setdefault(row["phone"], []).append(row)
    for number, rows in by_number.items():
        for earlier, later in zip(rows, rows[1:]):
            assert earlier["outcome"] == "interrupted" or earlier["cut_short"], (number, seen)
            assert later["dialed_at"] >= earlier["ended_at"] + timedelta(seconds=INTERRUPTED_DELAY_S - 0.5), (number, seen)
    # Only the lease's holder dialed: the second daemon stood by while the first lived, and
    # dialed only once the dead daemon's lease had run out and its calls were reconciled.
    second_log = logs["second"].read_text()
    [gained] = logged(second_log, "lease.gained")
    assert gained["taken_from"] == "first"
    expired_at = dead_lease.expires_at.replace(tzinfo=UTC).timestamp()
    second_dials = logged(second_log, "call.dialing")
    assert second_dials and min(d["at"] for d in second_dials) >= max(gained["at"], expired_at), tails()
    first_dials = {d["attempt"] for d in logged(logs["first"].read_text(), "call.dialing")}
    assert first_dials and not first_dials & {d["attempt"] for d in second_dials}
    # The first daemon's calls still up at the kill were adopted by the survivor, not closed unseen.
    adopted = {d["attempt"] for d in logged(second_log, "call.adopted")}
    assert adopted and adopted <= first_dials, tails()
    print(f"takeover: lease gained {gained['at'] - killed_at:.1f} s after the kill, first dial "
          f"{min(d['at'] for d in second_dials) - killed_at:.1f} s after, {len(adopted)} call(s) adopted",
          file=sys.stderr)
