"""`dialer report CAMPAIGN [--json] [--csv FILE]`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.cli.survey_report import add_survey_and_amd, survey_and_amd_text
from dialer.config.loader import load_campaign_dir
from dialer.config.models import Campaign
from dialer.inbound.report import add_inbound, inbound_text
from dialer.report import build_report, render_text
from dialer.store.store import Store, StoreError
from dialer.webhook_report import add_webhooks, webhooks_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="a campaign's outcomes and abandon rate")
    parser.add_argument("campaign")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the survey answers to FILE (CSV)")
    add_config_argument(parser)
    parser.set_defaults(func=run)


async def campaign_report(
    database_url: str, campaign: str, settings: Campaign | None = None, csv_path: Path | None = None
) -> dict:
    store = await Store.open(database_url)
    try:
        campaign_id = await store.campaign_id(campaign)
        attempts = await store.attempts(campaign_id)
        report = build_report(campaign, await store.leads(campaign_id), attempts)
        await add_survey_and_amd(report, store, campaign_id, attempts, settings, csv_path)
        await add_inbound(report, store, campaign_id)
        await add_webhooks(report, store, campaign_id, settings)
        return report
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        settings = load_campaign_dir(config.campaign_dir)[0].get(args.campaign)
        report = asyncio.run(campaign_report(config.database.url, args.campaign, settings, args.csv))
    except (CommandError, StoreError, OSError) as exc:
        return fail(str(exc))
    text = render_text(report) + survey_and_amd_text(report) + inbound_text(report) + webhooks_text(report)
    print(json.dumps(report, indent=2) if args.json else text)
    return 0
