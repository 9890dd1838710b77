"""`dialer report CAMPAIGN [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.report import build_report, render_text
from dialer.store.store import Store, StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="a campaign's outcomes and abandon rate")
    parser.add_argument("campaign")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_config_argument(parser)
    parser.set_defaults(func=run)


async def campaign_report(database_url: str, campaign: str) -> dict:
    store = await Store.open(database_url)
    try:
        campaign_id = await store.campaign_id(campaign)
        return build_report(campaign, await store.leads(campaign_id), await store.attempts(campaign_id))
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        report = asyncio.run(campaign_report(config.database.url, args.campaign))
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return 0
