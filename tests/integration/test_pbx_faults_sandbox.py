"""Faults of the PBX and of our own stop, against the real sandbox (issue 11, items 12, 13).

`core restart now` with calls ringing and calls bridged: from the database, the
ringing ones are `interrupted`, the conversations flagged `cut_short`, every lead
due again with none of its attempts used up, none closed by the fault. A SIGTERM
drain whose deadline passes while a call is bridged: never (the call up in
Asterisk, per CoreShowChannels) and (its lead due); the next start adopts it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from dialer.ami.gateway import AmiGateway
from dialer.config.models import AmiServer
from dialer.core.reconcile import LiveChannel, channel_from_event
from dialer.sandbox import CustomerKind, Sandbox, SandboxState, customer_number
from tests.integration.campaign_lab import Lab, make_lab, sipp_view, write_leads
from tests.integration.test_crash_safety import _seed_history, logged

pytestmark = pytest.mark.sandbox

RING_TIMEOUT = 45


def numbers(ring_s: int, talk_s: int, count: int) -> list[str]:
    serial = random.Random().randrange(1000, 9000 - count)
    return [customer_number(CustomerKind.ANSWER, ring_s, talk_s, serial + i) for i in range(count)]


def fault_lab(tmp_path: Path, sandbox: SandboxState, name: str, *, ratio: float, max_lines: int) -> Lab:
    lab = make_lab(
        tmp_path,
        sandbox,
        campaign=name,
        dialing={
            "mode": "ratio",
            "ratio": ratio,
            "ring_timeout": RING_TIMEOUT,
            "allow_short_ring": True,
            "max_lines": max_lines,
            "agent_wait": 30,
        },
        # The campaign's own rule for faults (also the default): due again in 30 minutes.
        rules={"retries": {"interrupted": {"delay_minutes": 30, "max_attempts": 3}}},
    )
    asyncio.run(_seed_history(tmp_path / "dialer.db", name, 300))
    return lab


def start_daemon(lab: Lab, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "dialer", "run", "--config", str(lab.config), *extra],
            stdout=subprocess.DEVNULL,
            stderr=output,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )


def stop(daemon: subprocess.Popen[bytes], *signals: signal.Signals, timeout: float = 60) -> int:
    for sig in signals:
        os.killpg(daemon.pid, sig)
        time.sleep(0.3)
    try:
        return daemon.wait(timeout=timeout)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()


def query(db: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    with sqlite3.connect(db, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, args).fetchall()


def states(db: Path, phones: set[str]) -> Counter[str]:
    rows = query(db, "SELECT phone, state FROM call_attempts WHERE outcome IS NULL")
    return Counter(row["state"] for row in rows if row["phone"] in phones)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, daemon: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.poll() is None, f"the daemon exited:\n{log.read_text()[-3000:]}"
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}:\n{log.read_text()[-3000:]}")


async def _channels(sandbox: SandboxState) -> list[LiveChannel]:
    ami = AmiGateway(
        AmiServer(
            host=sandbox.ami.host, port=sandbox.ami.port, username=sandbox.ami.username, secret=sandbox.ami.secret
        )
    )
    await ami.connect_once()
    try:
        reply = await ami.action({"Action": "CoreShowChannels"}, as_list=True)
    finally:
        await ami.close()
    entries = reply if isinstance(reply, list) else [reply]
    return [c for e in entries if (c := channel_from_event(dict(e))) is not None]


def channels_up(sandbox: SandboxState) -> list[LiveChannel]:
    """Asterisk's own channel list, read on a connection of our own."""
    return asyncio.run(_channels(sandbox))


@pytest.mark.timeout(240)
def test_an_asterisk_restart_interrupts_ringing_calls_flags_cut_conversations_and_closes_no_lead(
    sandbox_handle: Sandbox, sandbox: SandboxState, tmp_path: Path
) -> None:
    # Four answer at once: three talk to the three agents, one waits in the queue.
    talkers = numbers(ring_s=1, talk_s=90, count=4)
    ringers = numbers(ring_s=40, talk_s=5, count=6)  # still ringing when Asterisk goes
    phones = talkers + ringers
    lab = fault_lab(tmp_path, sandbox, "pbxrestart", ratio=3.0, max_lines=10)
    lab.dialer("leads", "import", "pbxrestart", str(write_leads(tmp_path / "leads.csv", phones)))
    db = tmp_path / "dialer.db"
    log = tmp_path / "daemon.log"
    daemon = start_daemon(lab, log)
    try:
        def ready() -> bool:
            up = states(db, set(phones))
            return up["bridged"] >= 2 and up["up"] >= 1 and up["dialing"] + up["ringing"] >= 4

        wait_until(ready, 40, "never two calls bridged, one waiting and four ringing at once", daemon, log)
        before = states(db, set(phones))
        cut = {r["id"] for r in query(db, "SELECT id FROM call_attempts WHERE state != 'ended'")}
        sandbox_handle.restart_asterisk()

        def settled() -> bool:
            return not cut & {r["id"] for r in query(db, "SELECT id FROM call_attempts WHERE state != 'ended'")}

        wait_until(settled, 60, "attempts left open after the restart", daemon, log)
        wait_until(lambda: "reconcile.done" in log.read_text(), 30, "no reconciliation", daemon, log)
    finally:
        code = stop(daemon, signal.SIGTERM)
    text = log.read_text()
    assert code == 0, text[-3000:]

    # An Originate Asterisk refused while going down reached nobody (`not_sent`): left out.
    refused = ("not_sent", "refused")
    rows = [dict(r) for r in query(db, "SELECT * FROM call_attempts") if r["phone"] in set(phones)]
    attempts = [a for a in rows if a["outcome"] not in refused]
    assert len({a["phone"] for a in attempts}) == len(attempts), "a number dialed twice"
    # The calls up when Asterisk went (a lead left undialed then is dialed on the new connection).
    by_phone = {a["phone"]: a for a in attempts if a["id"] in cut}
    assert len(by_phone) == len(cut) >= 7, attempts
    ringing = [p for p in ringers if p in by_phone]
    # Ringing when Asterisk went: interrupted, never `failed` (main) or any customer outcome.
    assert {by_phone[p]["outcome"] for p in ringing} == {"interrupted"}, [by_phone[p] for p in ringing]
    assert not any(by_phone[p]["cut_short"] for p in ringing)
    # Talking to an agent: answered, flagged as cut short; waiting for one: interrupted, cut short.
    talked = [p for p in talkers if by_phone[p]["bridged_at"]]
    waited = [p for p in talkers if not by_phone[p]["bridged_at"]]
    assert len(talked) >= 2 and waited, [by_phone[p] for p in talkers]
    assert {(by_phone[p]["outcome"], by_phone[p]["cut_short"]) for p in talked} == {("answered", 1)}, by_phone
    assert {(by_phone[p]["outcome"], by_phone[p]["cut_short"]) for p in waited} == {("interrupted", 1)}, by_phone
    # No lead closed by the fault; each due again by the rule, with no attempt used up.
    leads = {r["phone"]: dict(r) for r in query(db, "SELECT * FROM leads") if r["phone"] in by_phone}
    assert {p: (l["state"], l["attempts"], l["final_reason"]) for p, l in leads.items()} == {
        p: ("pending", 0, None) for p in by_phone
    }
    for phone, lead in leads.items():
        assert lead["next_attempt_at"] > by_phone[phone]["ended_at"], lead  # 30 minutes on, not now
    # What the carrier saw: one INVITE per number, none redialed inside its delay.
    dialed = {a["phone"] for a in attempts}
    assert sipp_view(sandbox, dialed).invites == Counter({p: 1 for p in dialed})
    print(f"at the restart: {dict(before)}; Shutdown event seen: {bool(logged(text, 'ami.pbx_shutdown'))}")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("second_signal", [False, True], ids=["drain-deadline", "second-signal"])
def test_a_call_up_at_the_stop_is_never_up_in_asterisk_and_due_at_once(
    sandbox: SandboxState, tmp_path: Path, second_signal: bool
) -> None:
    talker = numbers(ring_s=1, talk_s=25, count=1)[0]
    lab = fault_lab(tmp_path, sandbox, "drainup", ratio=1.0, max_lines=1)
    lab.dialer("leads", "import", "drainup", str(write_leads(tmp_path / "leads.csv", [talker])))
    db = tmp_path / "dialer.db"
    log = tmp_path / "daemon.log"
    daemon = start_daemon(lab, log, "--drain-timeout", "1")
    try:
        wait_until(lambda: states(db, {talker})["bridged"] == 1, 30, "the call was never bridged", daemon, log)
        attempt_id = query(db, "SELECT id FROM call_attempts WHERE phone = ?", talker)[0]["id"]
    finally:
        signals = (signal.SIGTERM, signal.SIGTERM) if second_signal else (signal.SIGTERM,)
        code = stop(daemon, *signals, timeout=30)
    assert code == 0, log.read_text()[-3000:]

    # The customer is still talking in Asterisk...
    up = [c for c in channels_up(sandbox) if attempt_id in (c.uniqueid, c.linkedid)]
    assert any(c.uniqueid == attempt_id for c in up), f"the call did not outlive the stop: {up}"
    # ...so the lead must not be due: it stays leased by that attempt, whose row stays open.
    lead = dict(query(db, "SELECT * FROM leads WHERE phone = ?", talker)[0])
    assert (lead["state"], lead["lease_attempt_id"]) == ("leased", attempt_id), lead
    row = dict(query(db, "SELECT * FROM call_attempts WHERE id = ?", attempt_id)[0])
    assert (row["state"], row["outcome"]) == ("bridged", None), row

    # The next start adopts the call and follows it to its real end.
    log2 = tmp_path / "second.log"
    restarted = start_daemon(lab, log2, "--until-done")
    try:
        restarted.wait(timeout=90)
    finally:
        if restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGKILL)
    text = log2.read_text()
    assert restarted.returncode == 0, text[-3000:]
    assert attempt_id in {e["attempt"] for e in logged(text, "call.adopted")}, text[-3000:]
    row = dict(query(db, "SELECT * FROM call_attempts WHERE id = ?", attempt_id)[0])
    assert (row["outcome"], row["cut_short"]) == ("answered", 0), row
    lead = dict(query(db, "SELECT * FROM leads WHERE phone = ?", talker)[0])
    assert (lead["state"], lead["final_outcome"]) == ("done", "answered"), lead
    assert sipp_view(sandbox, {talker}).invites == Counter({talker: 1})
