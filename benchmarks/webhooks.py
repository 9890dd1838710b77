"""Disposition webhooks: what they cost the disposition, how fast the outbox drains, and how
long hostile receivers hold the daemon's event loop.

    .venv/bin/python benchmarks/webhooks.py [--dispositions 300]

Prints:
- apply_disposition's time (mean, p95) without a webhook and with one that wants the code
  (the outbox row and its JSON body are written in the disposition's transaction);
- deliveries per second to a receiver on 127.0.0.1 that answers 204 at once;
- with the receivers hostile (never answering; answering 5 GB; redirecting), the longest the
  event loop went without running a 5 ms heartbeat while the dispatcher worked, and the
  bytes of the 5 GB answers the receiver managed to push before the connection was closed
  (the receivers run in the same process and loop, so the stall counts their work too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "unit")]

from daemon_process import free_port  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

from dialer.config.models import Campaign  # noqa: E402
from dialer.dispositions import apply_disposition  # noqa: E402
from dialer.leads.intake import LeadRow  # noqa: E402
from dialer.store.schema import webhook_outbox  # noqa: E402
from dialer.store.store import Store  # noqa: E402
from dialer.webhook_dispatcher import WebhookDispatcher  # noqa: E402

SECRET_ENV = "BENCH_HOOK_SECRET"


def campaign(url: str | None) -> Campaign:
    hooks = [{"name": "crm", "url": url, "secret_env": SECRET_ENV, "timeout": 2, "first_retry": 60}] if url else []
    return Campaign.model_validate(
        {
            "name": "bench",
            "type": "survey",
            "trunk": "PJSIP/{number}@carrier",
            "caller_id": "+15550100",
            "queue": "sales",
            "dispositions": {"complaint": "close"},
            "webhooks": hooks,
        }
    )


async def answered(store: Store, count: int, offset: int) -> list[str]:
    campaign_id = await store.sync_campaign("bench", "survey")
    rows = [LeadRow(line=i, phone=f"+1202{offset + i:07d}", name=f"C {i}", customer_id=f"C-{i}") for i in range(count)]
    await store.import_leads(campaign_id, rows)
    ids = []
    for lease in await store.lease_due_leads(campaign_id, count, datetime.now(UTC)):
        await store.finish_attempt(lease.attempt_id, outcome="answered", lead_state="done")
        ids.append(lease.attempt_id)
    return ids


async def time_dispositions(store: Store, settings: Campaign, attempts: list[str]) -> list[float]:
    took = []
    for attempt in attempts:
        start = time.perf_counter()
        await apply_disposition(store, {"bench": settings}, attempt_id=attempt, code="complaint", now=datetime.now(UTC))
        took.append((time.perf_counter() - start) * 1000)
    return took


async def heartbeat(stop: asyncio.Event, worst: list[float]) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        worst[0] = max(worst[0], now - last - 0.005)
        last = now


async def main(count: int) -> None:
    os.environ[SECRET_ENV] = "bench-secret-0123456789abcdef"
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        receiver = Receiver(free_port())
        await receiver.start()
        try:
            plain = await time_dispositions(store, campaign(None), await answered(store, count, 0))
            hooked = await time_dispositions(store, campaign(receiver.url), await answered(store, count, count))
            for label, took in (("no webhook", plain), ("one webhook", hooked)):
                p95 = statistics.quantiles(took, n=20)[-1]
                print(f"apply_disposition, {label:<12}: mean {statistics.mean(took):.2f} ms, p95 {p95:.2f} ms ({count} runs)")

            settings = campaign(receiver.url)
            dispatcher = WebhookDispatcher(store, lambda: {"bench": settings}, poll_interval=0.01)
            stop = asyncio.Event()
            start = time.perf_counter()
            task = asyncio.create_task(dispatcher.run(stop))
            while len(receiver.answered_ok) < count:
                await asyncio.sleep(0.01)
            took = time.perf_counter() - start
            stop.set()
            await task
            print(f"deliveries to a 204 receiver on 127.0.0.1: {count} in {took:.2f} s = {count / took:.0f}/s (4 at once)")

            for mode in ("black_hole", "huge", "redirect"):
                hostile = Receiver(free_port(), mode=mode)
                await hostile.start()
                settings = campaign(hostile.url)
                async with store._write() as conn:  # each receiver gets only its own 20 deliveries
                    await conn.execute(update(webhook_outbox).values(state="dead"))
                await time_dispositions(store, settings, await answered(store, 20, 10_000 * (1 + len(mode))))
                worst = [0.0]
                stop = asyncio.Event()
                beat = asyncio.create_task(heartbeat(stop, worst))
                dispatcher = WebhookDispatcher(store, lambda: {"bench": settings}, poll_interval=0.01)
                task = asyncio.create_task(dispatcher.run(stop))
                await asyncio.sleep(5)
                stop.set()
                await asyncio.gather(task, beat)
                await hostile.stop()
                extra = f", {hostile.huge_bytes_sent / 1024**2:.1f} MiB of the 5 GB pushed in all" if mode == "huge" else ""
                print(
                    f"receiver {mode:<10}: {len(hostile.received)} tries in 5 s, "
                    f"longest event-loop stall {worst[0] * 1000:.1f} ms{extra}"
                )
        finally:
            await receiver.stop()
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dispositions", type=int, default=300)
    asyncio.run(main(parser.parse_args().dispositions))
