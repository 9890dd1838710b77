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
from dialer.sandbox import CarrierEvent, CustomerKind, Sandbox, customer_number, read_carrier_events
from dialer.store import campaign_owners
from dialer.store.store import Store
from tests.integration.conftest import PORT_OFFSET
from tests.integration.server_pair import ami_servers, calls_up, floor_agents, sandbox_pair
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.sandbox

LEADS = 6  # three rounds of two calls
TALK_S = 20  # calls long enough to be still up when the survivor takes over
TAKEOVER_AFTER, HEARTBEAT = 6, 1
# A call the restart cut is due again after this: longer than b's restart and a call's talk time,
# so a redial that ignored it would come sooner (an agent is free again within them), short enough
# that the redial happens inside the test.
INTERRUPTED_DELAY_S = 30.0


@pytest.fixture(scope="module")
def two_sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Sandbox]]:
    # Clear of the session's own sandbox at PORT_OFFSET (alive all session long in a full run),
    # of the other tests' (+5 to +100) and of the several-servers test's pair (+300, +400).
    yield from sandbox_pair(tmp_path_factory, PORT_OFFSET + 500)


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
    # b has the more free agents, so each round of two calls puts one on b (dialer.core.servers.choose):
    # the first daemon's first round reaches both servers, and the last round has a call on b to cut.
    servers = ami_servers(tmp_path, a, b)
    agents = floor_agents(a, b, on_a=1, on_b=2)
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

    def carrier(name: str) -> list[CarrierEvent]:
        state = a if name == "a" else b
        return [e for e in read_carrier_events(state)[before[name]:] if e.number in numbers]

    def invites() -> list[tuple[str, float]]:
        return sorted((e.number, e.at or 0.0) for name in ("a", "b") for e in carrier(name) if e.event == "invite")

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
        while not (any(e.event == "invite" for e in carrier("a")) and any(e.event == "invite" for e in carrier("b"))):
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
        # The restart must cut a conversation, and its lead's redial must be the only dial left, so
        # that a redial sooner than the retry delay has nothing ahead of it and shows: wait until
        # every number was dialed once and a customer and an agent are talking on b.
        deadline = time.monotonic() + 240
        while not ({n for n, _ in invites()} == set(numbers) and (up_on_b := calls_up(b, set(numbers)))):
            assert daemons["second"].poll() is None and time.monotonic() < deadline, tails()
            time.sleep(0.2)
        restarted_at = time.time()
        sandbox_b.restart_asterisk()
        back_at = time.time()
        assert daemons["second"].wait(timeout=300) == 0, tails()
    finally:
        for process in daemons.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    attempts, lead_rows = asyncio.run(_rows(url, "shared"))
    seen = f"kill {killed_at}, takeover {taken_over_at}, restart {restarted_at}..{back_at}, up on b {up_on_b}; " \
        "attempts: " + "\n".join(
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
    # The restart cut the conversations up on b, each a fault on b's row.
    cut = [r for r in dialed if r["outcome"] == "interrupted" or r["cut_short"]]
    assert len(cut) >= 1 and all(r["server"] == "b" for r in cut), seen
    assert up_on_b <= {r["phone"] for r in cut}, seen
    # No number dialed twice inside its retry delay: a number's next attempt comes only after the
    # last one ended, and then only after a call a fault cut, its delay later.
    by_number: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(dialed, key=lambda r: r["dialed_at"]):
        by_number.setdefault(row["phone"], []).append(row)
    for number, rows in by_number.items():
        for earlier, later in zip(rows, rows[1:]):
            assert earlier["outcome"] == "interrupted" or earlier["cut_short"], (number, seen)
            assert later["dialed_at"] >= earlier["ended_at"] + timedelta(seconds=INTERRUPTED_DELAY_S - 0.5), (number, seen)
    # The run waits until every lead is done, so each cut call's lead was redialed: as the carriers
    # saw it too, no sooner than the delay after the PBX ended the cut call (the carrier's last
    # message on that call; the restart itself when Asterisk never said goodbye).
    on_carriers = carrier("a") + carrier("b")
    for number in {r["phone"] for r in cut}:
        assert len(by_number[number]) >= 2, (number, seen)
        cut_calls = {e.call_id for e in carrier("b") if e.number == number and e.event == "answered"
                     and (e.at or 0.0) < restarted_at}
        ended = [e.at or 0.0 for e in carrier("b") if e.call_id in cut_calls and e.event in ("bye_received", "bye_sent")]
        cut_at = min([*ended, back_at])
        redials = sorted(e.at or 0.0 for e in on_carriers if e.number == number and e.event == "invite"
                         and (e.at or 0.0) > restarted_at)
        assert redials and redials[0] >= cut_at + INTERRUPTED_DELAY_S - 0.5, (number, cut_at, redials, seen)
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
          f"{min(d['at'] for d in second_dials) - killed_at:.1f} s after, {len(adopted)} call(s) adopted; "
          f"restart cut {len(cut)} call(s), redialed {min(redial_gaps(by_number, cut)):.1f} s or more after",
          file=sys.stderr)


def redial_gaps(by_number: dict[str, list[dict[str, Any]]], cut: list[dict[str, Any]]) -> list[float]:
    """For each cut attempt, seconds from its end to its lead's next dial (by the database)."""
    gaps = []
    for row in cut:
        later = [r for r in by_number[row["phone"]] if r["dialed_at"] > row["dialed_at"]]
        gaps.append((later[0]["dialed_at"] - row["ended_at"]).total_seconds())
    return gaps
