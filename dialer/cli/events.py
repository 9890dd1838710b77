"""`dialer events import FILE.csv`: customer events that schedule revisit calls.

Each event (complaint_closed, new_customer, low_satisfaction) goes to every
enabled campaign whose `revisit` names its kind, due that many days after the
event. Columns: see `dialer.leads.event_csv`. All or nothing: every row is
checked (for every revisiting campaign, each reading numbers by its own rules)
before anything is written; one bad row and nothing is imported. Exit status:
0 imported, 2 nothing imported (each bad row is shown with its line and field).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from dialer.cli.context import CommandError, add_config_argument, fail, read_campaigns, read_config
from dialer.config.models import Campaign
from dialer.leads.event_csv import EventRow, parse_events_csv
from dialer.store.customer_events import RevisitSummary, schedule_revisits
from dialer.store.store import Store, StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("events", help="customer events for revisit campaigns")
    actions = parser.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    importer = actions.add_parser("import", help="import events from a CSV file (phone,event,date)")
    importer.add_argument("file", type=Path)
    add_config_argument(importer)
    importer.set_defaults(func=run_import)


async def _schedule(url: str, plan: list[tuple[Campaign, list[EventRow]]]) -> list[tuple[str, RevisitSummary]]:
    store = await Store.open(url)
    now = datetime.now(UTC)
    try:
        ids = [await store.sync_campaign(campaign.name, campaign.type.value) for campaign, _ in plan]
        summaries = await schedule_revisits(
            store, [(i, rows, campaign.revisit) for i, (campaign, rows) in zip(ids, plan)], now
        )
        return [(campaign.name, summary) for (campaign, _), summary in zip(plan, summaries)]
    finally:
        await store.close()


def run_import(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        campaigns = read_campaigns(config, strict=False)
    except CommandError as exc:
        return fail(str(exc))
    if not args.file.is_file():
        return fail(f"{args.file}: no such file")
    revisiting = [c for c in campaigns.values() if c.enabled and c.revisit]
    if not revisiting:
        return fail(f"no enabled campaign in {config.campaign_dir} has a revisit section")
    plan: list[tuple[Campaign, list[EventRow]]] = []
    problems: dict[str, None] = {}
    today = datetime.now(UTC).date()
    for campaign in revisiting:
        # Parsed per campaign: each reads numbers by its own rules (region, E.164 or as written).
        rows, errors = parse_events_csv(
            args.file, campaign.numbers.policy(config.default_region), today=today, deny=campaign.numbers.deny_list()
        )
        wanted = [r for r in rows if r.kind in campaign.revisit]
        if wanted:
            plan.append((campaign, wanted))
        for error in errors:
            where = "" if len(revisiting) == 1 else f" (campaign {campaign.name})"
            problems[f"{args.file}:{error.line}: {error.column or 'row'}: {error.message}{where}"] = None
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return fail(f"{args.file}: {len(problems)} problem(s); nothing imported")
    if not plan:
        return fail(f"{args.file}: no event matches a campaign's revisit kinds")
    try:
        results = asyncio.run(_schedule(config.database.url, plan))
    except StoreError as exc:
        return fail(str(exc))
    for name, summary in results:
        print(
            f"{name}: {summary.scheduled} revisit(s) scheduled, {summary.already_imported} already imported, "
            f"{summary.busy} lead(s) in a call now"
        )
    return 0
