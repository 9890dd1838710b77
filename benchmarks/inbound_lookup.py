"""How long the FastAGI `inbound` route takes to recognise and route a caller.

The dialplan waits for the route while the caller hears ringing (it answers within a
budget of 0.3 s, else the caller gets the default queue, `dialer.inbound.service`).
Fills a new SQLite database in a temporary directory with N customers (default
100 000), each with a lead in the campaign and one abandoned attempt, then runs the
route's decision and its row write for M callers (half known, half unknown numbers)
and prints the median, 95th percentile and worst time per call.

    .venv/bin/python benchmarks/inbound_lookup.py
    .venv/bin/python benchmarks/inbound_lookup.py --customers 20000 --calls 500
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core.agents import AgentBoard
from dialer.inbound.service import InboundService
from dialer.store.schema import call_attempts, customers, leads
from dialer.store.store import Store


def campaign() -> Campaign:
    return Campaign.model_validate({
        "name": "renewals", "type": "telemarketing", "trunk": "PJSIP/{number}@carrier",
        "caller_id": "+15550100", "queue": "sales", "numbers": {"default_region": "US"},
        "tiers": {"routing": {"key": {"queue": "key-accounts", "fallback_priority": 20}}},
        "inbound": {"default_queue": "support"},
    })


def number(i: int) -> str:
    return f"+1202{2000000 + i:07d}"


async def fill(store: Store, campaign_id: int, count: int) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    async with store._write() as conn:
        for start in range(0, count, 5000):
            chunk = range(start, min(count, start + 5000))
            await conn.execute(insert(customers), [
                {"id": i + 1, "phone": number(i), "external_id": f"C{i}", "tier": "key" if i % 5 == 0 else "standard",
                 "created_at": now} for i in chunk])
            await conn.execute(insert(leads), [
                {"id": i + 1, "campaign_id": campaign_id, "customer_id": i + 1, "phone": number(i), "state": "pending",
                 "attempts": 1, "data": {}, "created_at": now} for i in chunk])
            await conn.execute(insert(call_attempts), [
                {"id": f"att-{i}", "lead_id": i + 1, "campaign_id": campaign_id, "phone": number(i), "attempt_no": 1,
                 "state": "ended", "outcome": "abandoned", "dialed_at": now} for i in chunk])


async def main(customers_n: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        try:
            settings = campaign()
            campaign_id = await store.sync_campaign(settings.name, settings.type.value)
            started = time.perf_counter()
            await fill(store, campaign_id, customers_n)
            print(f"filled {customers_n} customers, leads and attempts in {time.perf_counter() - started:.1f} s")
            service = InboundService(store, AgentBoard({}), lambda: [settings], tiers=list(DEFAULT_TIERS),
                                     agent_ids={})
            rng = random.Random(1)
            times = {"known": [], "unknown": []}
            for k in range(calls):
                known = k % 2 == 0
                caller = number(rng.randrange(customers_n)) if known else f"+1303{rng.randrange(10**7):07d}"
                began = time.perf_counter()
                decision = await service.decide(f"bench.{k}", "+15550100", caller.removeprefix("+"))
                assert decision.call is not None and (decision.call.customer is not None) == known
                await service._write_row(decision.call, "+15550100", caller)
                times["known" if known else "unknown"].append((time.perf_counter() - began) * 1000)
            for kind, values in times.items():
                values.sort()
                p95 = values[int(len(values) * 0.95) - 1]
                print(f"{kind:<8} callers: {len(values)} calls, median {statistics.median(values):.2f} ms, "
                      f"p95 {p95:.2f} ms, worst {values[-1]:.2f} ms (look-up and row write; budget 300 ms)")
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.calls))
