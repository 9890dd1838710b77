"""Issue 15's Must show for webhooks, on a real `dialer run` process: a receiver on 127.0.0.1
gets exactly one delivery per disposition (counted by distinct event id), each validly
signed, through a 30 s receiver outage and a kill -9 of the daemon in between.

No PBX behaviour matters here (dispositions come through `POST /dispositions`), so the
daemon talks to the small fake AMI of daemon_process rather than the sandbox's Asterisk.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from daemon_process import TOKEN, DaemonProcess, FakeAmi, daemon_processes, free_port, write_config
from dialer.leads.intake import LeadRow
from dialer.store.store import Store
from webhook_receiver import Receiver

Start = Callable[..., Awaitable[DaemonProcess]]
SECRET = "whsec-e2e-0123456789abcdef"
OUTAGE = 30.0


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[Start]:
    async for start in daemon_processes(tmp_path):
        yield start


async def seed(db: Path, count: int) -> list[str]:
    """Answered calls of campaign revisit, their leads done: nothing for the daemon to dial."""
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        campaign_id = await store.sync_campaign("revisit", "survey")
        await store.import_leads(
            campaign_id,
            [LeadRow(line=i, phone=f"+1202555{i:04d}", name=f"Customer {i}", customer_id=f"C-{i}") for i in range(count)],
        )
        attempts = []
        for lease in await store.lease_due_leads(campaign_id, count, datetime.now(UTC)):
            await store.finish_attempt(lease.attempt_id, outcome="answered", lead_state="done")
            attempts.append(lease.attempt_id)
        return attempts
    finally:
        await store.close()


def campaign_file(receiver: Receiver) -> str:
    return yaml.safe_dump(
        {
            "name": "revisit",
            "type": "survey",
            "trunk": "PJSIP/{number}@carrier",
            "caller_id": "+15550100",
            "queue": "sales",
            "dispositions": {"complaint": "close", "unhappy": "close", "sale": "close"},
            "webhooks": [
                {
                    "name": "crm",
                    "url": receiver.url,
                    "dispositions": ["complaint", "unhappy"],
                    "secret_env": "CRM_HOOK_SECRET",
                    "timeout": 2,
                    "first_retry": 1,
                    "max_retry": 4,
                    "max_attempts": 100,
                }
            ],
        }
    )


async def ready(client: httpx.AsyncClient, daemon: DaemonProcess, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert daemon.process.returncode is None, daemon.log.read_text()[-3000:]
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"never ready:\n{daemon.log.read_text()[-3000:]}")


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def outbox(db: Path) -> list[dict[str, object]]:
    with sqlite3.connect(db, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM webhook_outbox ORDER BY id")]


@pytest.mark.timeout(115)
async def test_one_signed_delivery_per_disposition_through_an_outage_and_a_kill_9(
    tmp_path: Path, start_daemon: Start
) -> None:
    receiver = Receiver(free_port())
    await receiver.start()
    ami = FakeAmi(free_port())
    await ami.start()
    http_port = free_port()
    config = write_config(tmp_path, ami.port, {"bind": "127.0.0.1", "port": http_port, "token": TOKEN})
    (tmp_path / "campaigns" / "revisit.yaml").write_text(campaign_file(receiver))
    db = tmp_path / "dialer.db"
    attempts = await seed(db, 5)
    env = {"CRM_HOOK_SECRET": SECRET}
    expected: dict[str, str] = {}  # event id -> code
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        ) as client:

            async def dispose(attempt: str, code: str) -> str | None:
                answer = await client.post(
                    "/dispositions", json={"attempt_id": attempt, "code": code, "agent": "agent1", "notes": f"{code} found"}
                )
                assert answer.status_code == 200, answer.text
                event_id = answer.json()["webhook_event_id"]
                if event_id is not None:
                    expected[event_id] = code
                return event_id

            daemon = await start_daemon(config, env=env)
            await ready(client, daemon)
            first = await dispose(attempts[0], "complaint")
            assert await dispose(attempts[1], "sale") is None, "no webhook wants a sale"
            await until(lambda: first in receiver.answered_ok, 10, "the first delivery never arrived")

            # The outage: first the receiver takes requests and never answers (the daemon's
            # tries time out, and it is killed with requests in flight), then its port is closed.
            outage_began = time.monotonic()
            receiver.mode = "black_hole"
            during = [await dispose(attempts[2], "unhappy"), await dispose(attempts[3], "complaint")]
            await until(
                lambda: {g.event_id for g in receiver.received} >= set(during), 10, "the outage's tries never came"
            )
            await until(
                lambda: min(Counter(g.event_id for g in receiver.received)[e] for e in during) >= 2, 15,
                "no try after a timeout",
            )
            daemon.process.send_signal(signal.SIGKILL)
            assert await daemon.process.wait() == -signal.SIGKILL
            await receiver.stop()
            daemon = await start_daemon(config, env=env)
            await ready(client, daemon)
            after_kill = await dispose(attempts[4], "complaint")
            await asyncio.sleep(max(0.0, outage_began + OUTAGE - time.monotonic()))
            assert time.monotonic() - outage_began >= OUTAGE
            assert not set(receiver.answered_ok) & {*during, after_kill}, "delivered during the outage"

            receiver.mode = "ok"
            await receiver.start()
            await until(lambda: set(receiver.answered_ok) == set(expected), 20, f"not all delivered: {outbox(db)}")
            await until(lambda: all(row["state"] == "delivered" for row in outbox(db)), 10, "outbox not marked")
            metrics = (await client.get("/metrics")).text
            # Since the restart: the two held up by the outage and the one given after the kill.
            assert 'dialer_webhook_delivered_total{campaign="revisit",webhook="crm"} 3.0' in metrics, metrics[-2000:]
            assert 'dialer_webhook_failed_tries_total{campaign="revisit",webhook="crm"}' in metrics
            daemon.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.process.wait(), 40) == 0
    finally:
        await receiver.stop()
        await ami.close()

    # Exactly one delivery per disposition at a receiver that deduplicates by event id...
    assert len(expected) == 4 and set(receiver.answered_ok) == set(expected)
    assert {g.event_id for g in receiver.received} == set(expected)
    # ...and each redelivery is the same event: same id in the header and the body, same bytes, signed.
    copies = Counter(g.event_id for g in receiver.received)
    assert all(copies[e] >= 3 for e in during), copies  # two timed out tries, then the one after the outage
    for event_id in expected:
        bodies = {g.body for g in receiver.received if g.event_id == event_id}
        assert len(bodies) == 1, f"{event_id} was sent with different bodies"
    for got in receiver.received:
        assert got.signed_by(SECRET.encode()), got.headers
        body = got.json()
        assert body["event_id"] == got.event_id
        assert (body["campaign"], body["disposition"]["code"], body["agent"]) == ("revisit", expected[got.event_id], "agent1")
        assert body["notes"] == f"{expected[got.event_id]} found" and body["customer"]["id"].startswith("C-")
    rows = outbox(db)
    assert len(rows) == 4 and all(row["state"] == "delivered" for row in rows)
    assert sum(int(row["failed_tries"]) for row in rows) >= 4  # type: ignore[call-overload]

    report = subprocess.run(
        [sys.executable, "-m", "dialer", "report", "revisit", "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    section = json.loads(report.stdout)["webhooks"]["crm"]
    assert (section["delivered"], section["pending"], section["dead"]) == (4, 0, 0)
    assert section["failed_tries"] >= 4
