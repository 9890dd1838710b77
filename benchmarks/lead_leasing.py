"""How fast the store moves leads through their life cycle: lease, then end each attempt.

Imports N leads (default 5 000) into a new SQLite file in a temporary directory,
then leases them `--batch` at a time (`Store.lease_due_leads`, one transaction per
batch, as the runner's tick does) and ends every attempt with the campaign rules
(`finish_with_rules`: half busy, so due again; half answered, so done). Prints
leases and attempts ended per second of wall time and per second of this process's
CPU (the steadier figure on a shared machine).

    .venv/bin/python benchmarks/lead_leasing.py
    .venv/bin/python benchmarks/lead_leasing.py --leads 20000 --batch 20
    PYTHONPATH=../dialer-old .venv/bin/python benchmarks/lead_leasing.py   # another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime

import dialer
from dialer.config.campaign_rules import DEFAULT_RETRIES, retry_rules
from dialer.leads.csv_import import LeadRow
from dialer.store.lead_outcomes import finish_with_rules
from dialer.store.store import Store

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


async def run(leads: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp}/bench.db")
        try:
            campaign = await store.sync_campaign("bench", "sales")
            await store.import_leads(campaign, [LeadRow(line=i + 2, phone=f"+1212{i:07d}") for i in range(leads)])
            began, cpu = time.perf_counter(), time.process_time()
            leases = []
            while len(leases) < leads:
                taken = await store.lease_due_leads(campaign, batch, NOW)
                if not taken:
                    break
                leases.extend(taken)
            leased_in, leased_cpu = time.perf_counter() - began, time.process_time() - cpu
            rules = retry_rules(DEFAULT_RETRIES)
            began, cpu = time.perf_counter(), time.process_time()
            for i, lease in enumerate(leases):
                outcome = "busy" if i % 2 else "answered"
                await finish_with_rules(store, lease.attempt_id, outcome=outcome, now=NOW, rules=rules, ended_at=NOW)
            ended_in, ended_cpu = time.perf_counter() - began, time.process_time() - cpu
        finally:
            await store.close()
    print(f"dialer from {dialer.__file__}")
    n = len(leases)
    print(f"leased {n} leads in batches of {batch}: {n / leased_in:,.0f}/s, {n / leased_cpu:,.0f} per CPU second")
    print(f"ended {n} attempts one by one: {n / ended_in:,.0f}/s, {n / ended_cpu:,.0f} per CPU second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.leads, args.batch))


if __name__ == "__main__":
    main()
