"""`dialer webhooks list|requeue`: the disposition webhooks' deliveries and dead letters.

Works on the database, with or without a running daemon: a requeued delivery is due
at once, and the daemon's dispatcher sends it within a second (at its next start if
none runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.core.webhook_delivery import OutboxState
from dialer.store import webhook_outbox
from dialer.store.store import Store, StoreError
from dialer.store.webhook_outbox import Delivery


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("webhooks", help="disposition webhook deliveries and dead letters")
    actions = parser.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    lister = actions.add_parser("list", help="deliveries, newest first")
    lister.add_argument("--campaign", help="only this campaign's")
    lister.add_argument("--dead", action="store_true", help="only dead letters")
    lister.add_argument("--state", choices=[s.value for s in OutboxState], help="only deliveries in this state")
    lister.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    lister.add_argument("--json", action="store_true", help="one JSON array")
    add_config_argument(lister)
    lister.set_defaults(func=run_list)
    again = actions.add_parser("requeue", help="send dead letters again (tries counted afresh)")
    again.add_argument("ids", nargs="*", type=int, metavar="ID", help="the deliveries (ids from `list`)")
    again.add_argument("--campaign", help="every dead letter of this campaign")
    again.add_argument("--all", action="store_true", help="every dead letter")
    add_config_argument(again)
    again.set_defaults(func=run_requeue)


def _as_json(d: Delivery) -> dict[str, object]:
    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat() + "Z"

    return {
        "id": d.id,
        "event_id": d.event_id,
        "campaign": d.campaign,
        "webhook": d.webhook,
        "attempt": d.attempt_id,
        "state": d.state.value,
        "tries": d.tries,
        "failed_tries": d.failed_tries,
        "created_at": when(d.created_at),
        "next_try_at": when(d.next_try_at),
        "last_try_at": when(d.last_try_at),
        "delivered_at": when(d.delivered_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
    }


async def _list(url: str, campaign: str | None, state: OutboxState | None, limit: int) -> list[Delivery]:
    store = await Store.open(url)
    try:
        return await webhook_outbox.list_deliveries(store, campaign=campaign, state=state, limit=limit)
    finally:
        await store.close()


async def _requeue(url: str, ids: list[int], campaign: str | None) -> int:
    store = await Store.open(url)
    try:
        return await webhook_outbox.requeue(store, datetime.now(UTC), ids=ids, campaign=campaign)
    finally:
        await store.close()


def run_list(args: argparse.Namespace) -> int:
    state = OutboxState.dead if args.dead else OutboxState(args.state) if args.state else None
    if args.limit < 1:
        return fail("--limit must be 1 or more")
    try:
        config = read_config(args.config)
        rows = asyncio.run(_list(config.database.url, args.campaign, state, args.limit))
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps([_as_json(d) for d in rows], indent=2))
        return 0
    if not rows:
        print("no webhook deliveries" + (" in that state" if state else ""))
        return 0
    print(f"{'id':>6}  {'state':<9} {'tries':>5}  {'campaign':<16} {'webhook':<16} {'event id':<32}  last error")
    for d in rows:
        print(
            f"{d.id:>6}  {d.state.value:<9} {d.tries:>5}  {d.campaign:<16} {d.webhook:<16} {d.event_id:<32}  "
            f"{d.last_error or ''}"
        )
    return 0


def run_requeue(args: argparse.Namespace) -> int:
    if not args.ids and not args.campaign and not args.all:
        return fail("name the deliveries (IDs), or give --campaign NAME or --all")
    if args.all and (args.ids or args.campaign):
        return fail("--all takes no IDs and no --campaign")
    try:
        config = read_config(args.config)
        count = asyncio.run(_requeue(config.database.url, args.ids, args.campaign))
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    print(f"{count} dead letter(s) queued again")
    if args.ids and count < len(set(args.ids)):
        print(f"{len(set(args.ids)) - count} of the IDs given are not dead letters (unknown, pending or delivered)")
        return 1
    return 0
