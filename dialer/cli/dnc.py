"""`dialer dnc`: the do-not-call lists (global, or one campaign's with --campaign).

    dialer dnc import [--campaign NAME] FILE.csv   numbers from a CSV with a phone column
    dialer dnc add [--campaign NAME] NUMBER...
    dialer dnc remove [--campaign NAME] NUMBER...
    dialer dnc list [--campaign NAME | --all]

Numbers are normalised as the campaign's leads are (E.164 unless the campaign
keeps numbers as written; the global list uses E.164 with the config's
`default_region`, or `--as-is`), so a listed number matches its leads. The
lists are checked just before every call, so a change applies to the running
daemon at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from dialer.cli.context import CommandError, add_config_argument, fail, read_campaigns, read_config
from dialer.config.models import DialerConfig
from dialer.leads.csv_import import parse_leads_csv
from dialer.core.dialable import DenyList
from dialer.leads.intake import LeadIntake
from dialer.leads.phone_numbers import NumberError, NumberPolicy
from dialer.store import dnc
from dialer.store.schema import GLOBAL_DNC
from dialer.store.store import Store, StoreError

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dnc", help="manage the do-not-call lists")
    actions = parser.add_subparsers(dest="dnc_command", metavar="ACTION", required=True)
    importer = actions.add_parser("import", help="add the numbers of a CSV file (column phone)")
    importer.add_argument("file", type=Path)
    adder = actions.add_parser("add", help="add numbers")
    adder.add_argument("numbers", nargs="+")
    remover = actions.add_parser("remove", help="remove numbers")
    remover.add_argument("numbers", nargs="+")
    lister = actions.add_parser("list", help="show a list (the global one by default)")
    lister.add_argument("--all", action="store_true", help="every list")
    for action, func in ((importer, run_import), (adder, run_add), (remover, run_remove), (lister, run_list)):
        action.add_argument("--campaign", help="the campaign's own list instead of the global one")
        action.add_argument("--as-is", action="store_true", help="keep numbers as written (no E.164)")
        add_config_argument(action)
        action.set_defaults(func=func)


def _setup(args: argparse.Namespace) -> tuple[DialerConfig, str, NumberPolicy]:
    config = read_config(args.config)
    if args.campaign is None:
        policy = NumberPolicy(e164=not args.as_is, default_region=config.default_region)
        return config, GLOBAL_DNC, policy
    campaigns = read_campaigns(config, strict=False)
    campaign = campaigns.get(args.campaign)
    if campaign is None:
        raise CommandError(f"no campaign named {args.campaign!r} in {config.campaign_dir}")
    policy = campaign.numbers.policy(config.default_region)
    if args.as_is:
        policy = NumberPolicy(e164=False)
    return config, campaign.name, policy


def _with_store(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await Store.open(url)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _normalised(numbers: list[str], policy: NumberPolicy) -> list[str]:
    """Numbers read as the leads' intake reads them, so a listed number matches its lead."""
    intake = LeadIntake(numbers=policy, deny=DenyList(()))
    result = []
    for raw in numbers:
        try:
            result.append(intake.number(raw))
        except NumberError as exc:
            raise CommandError(str(exc)) from exc
    return result


def _scope_name(scope: str) -> str:
    return "the global list" if scope == GLOBAL_DNC else f"campaign {scope}'s list"


def run_import(args: argparse.Namespace) -> int:
    try:
        config, scope, policy = _setup(args)
    except CommandError as exc:
        return fail(str(exc))
    if not args.file.is_file():
        return fail(f"{args.file}: no such file")
    parsed = parse_leads_csv(args.file, policy)
    for error in parsed.errors:
        print(f"{args.file}:{error.line}: {error.column or 'row'}: {error.message}", file=sys.stderr)
    if parsed.more_errors:
        print(f"{args.file}: {parsed.more_errors} more row(s) rejected, not shown", file=sys.stderr)
    if not parsed.rows:
        return fail(f"{args.file}: no valid numbers")
    now = datetime.now(UTC)
    source = f"import {args.file.name}"
    try:
        added = _with_store(
            config.database.url,
            lambda store: dnc.add_numbers(store, [r.phone for r in parsed.rows], scope=scope, source=source, now=now),
        )
    except StoreError as exc:
        return fail(str(exc))
    print(
        f"{_scope_name(scope)}: {added} number(s) added, {len(parsed.rows) - added} already listed, "
        f"{parsed.rejected} row(s) rejected"
    )
    return 1 if parsed.errors else 0


def run_add(args: argparse.Namespace) -> int:
    try:
        config, scope, policy = _setup(args)
        numbers = _normalised(args.numbers, policy)
        added = _with_store(
            config.database.url,
            lambda store: dnc.add_numbers(store, numbers, scope=scope, source="cli", now=datetime.now(UTC)),
        )
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    print(f"{_scope_name(scope)}: {added} number(s) added, {len(set(numbers)) - added} already listed")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    try:
        config, scope, policy = _setup(args)
        numbers = _normalised(args.numbers, policy)
        removed = _with_store(config.database.url, lambda store: dnc.remove_numbers(store, numbers, scope=scope))
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    print(f"{_scope_name(scope)}: {removed} number(s) removed")
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        config, scope, _ = _setup(args)
        entries = _with_store(
            config.database.url, lambda store: dnc.list_numbers(store, scope=None if args.all else scope)
        )
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    for entry in entries:
        where = "global" if entry.scope == GLOBAL_DNC else entry.scope
        print(f"{entry.phone}\t{where}\t{entry.added_at.isoformat(timespec='seconds')}Z\t{entry.source or ''}")
    return 0
