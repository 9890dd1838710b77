"""`dialer leads import CAMPAIGN FILE.csv`: bad rows reported by line, good rows kept.

Every row goes through the campaign's intake (`dialer.leads.intake`: number format,
region and deny rules). Rows are written in batches, each its own short transaction,
so a running daemon keeps writing while a big file goes in; a long import shows its
progress on stderr (one line updated in place on a terminal, a line every tenth
otherwise). Importing the same file again, after a crash half-way or not, adds
nothing twice.

Exit status: 0 all rows imported, 1 some rows rejected (the good ones are
imported all the same), 2 nothing could be imported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from dialer.cli.context import CommandError, add_config_argument, fail, read_campaigns, read_config
from dialer.config.models import Campaign
from dialer.config.tiers import TierConfig
from dialer.leads.csv_import import LeadRow, parse_leads_csv
from dialer.store.tier_import import tier_summary, tiers_after_import
from dialer.store import store as store_module
from dialer.store.store import ImportSummary, Store, StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("leads", help="manage a campaign's leads")
    actions = parser.add_subparsers(dest="leads_command", metavar="ACTION", required=True)
    importer = actions.add_parser("import", help="import leads from a CSV file")
    importer.add_argument("campaign", help="campaign name (from the campaign directory)")
    importer.add_argument("file", type=Path, help="CSV with a header row; column phone is required")
    add_config_argument(importer)
    importer.set_defaults(func=run_import)


async def import_rows(
    database_url: str,
    campaign_name: str,
    campaign_type: str,
    rows: list[LeadRow],
    tiers: tuple[Campaign, list[TierConfig]] | None = None,
    *,
    batch_size: int | None = None,
) -> ImportSummary:
    """Import `rows`; with `tiers` (the campaign and the ladder), recompute tiers after (docs/tiers.md)."""
    store = await Store.open(database_url)
    try:
        campaign_id = await store.sync_campaign(campaign_name, campaign_type)
        batch_size = batch_size or store_module.IMPORT_BATCH
        progress = Progress(campaign_name, len(rows)) if len(rows) > batch_size else None
        summary = await store.import_leads(
            campaign_id, rows, batch_size=batch_size, on_batch=progress.show if progress else None
        )
        if progress is not None:
            progress.close()
        if tiers is not None:
            counts = await tiers_after_import(store, campaign_id, tiers[0], tiers[1], rows)
            print(f"{campaign_name}: customers per tier: {tier_summary(counts, tiers[1])}")
        return summary
    finally:
        await store.close()


class Progress:
    """Rows written so far, on stderr: a line redrawn in place on a terminal, else a line per tenth."""

    def __init__(self, campaign: str, total: int) -> None:
        self.campaign = campaign
        self.total = total
        self.terminal = sys.stderr.isatty()
        self.shown_tenths = 0

    def show(self, done: int) -> None:
        text = f"{self.campaign}: {done}/{self.total} row(s) written ({100 * done // self.total} %)"
        if self.terminal:
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
            return
        tenths = 10 * done // self.total
        if tenths > self.shown_tenths:
            self.shown_tenths = tenths
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.terminal:
            print(file=sys.stderr, flush=True)


def run_import(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        campaigns = read_campaigns(config, strict=False)
    except CommandError as exc:
        return fail(str(exc))
    campaign = campaigns.get(args.campaign)
    if campaign is None:
        known = ", ".join(sorted(campaigns)) or "none"
        return fail(f"no campaign named {args.campaign!r} in {config.campaign_dir} (known: {known})")
    if not args.file.is_file():
        return fail(f"{args.file}: no such file")
    parsed = parse_leads_csv(args.file, campaign.numbers.policy(config.default_region), campaign.numbers.deny_list())
    for error in parsed.errors:
        print(f"{args.file}:{error.line}: {error.column or 'row'}: {error.message}", file=sys.stderr)
    if parsed.more_errors:
        print(f"{args.file}: {parsed.more_errors} more row(s) rejected, not shown", file=sys.stderr)
    if not parsed.rows:
        return fail(f"{args.file}: no valid rows to import")
    try:
        summary = asyncio.run(
            import_rows(
                config.database.url, campaign.name, campaign.type.value, parsed.rows, tiers=(campaign, config.tiers)
            )
        )
    except StoreError as exc:
        return fail(str(exc))
    print(
        f"{campaign.name}: imported {summary.added} lead(s), {summary.already_in_campaign} already in the campaign, "
        f"{parsed.rejected} row(s) rejected"
    )
    return 1 if parsed.errors else 0
