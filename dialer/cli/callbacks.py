"""`dialer callbacks list`: the callbacks customers asked for, due first.

Open ones by default (`--all` adds done and replaced ones); `--json` for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.store.callbacks import Callback, list_callbacks
from dialer.store.store import Store, StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("callbacks", help="scheduled callbacks")
    actions = parser.add_subparsers(dest="callbacks_command", metavar="ACTION", required=True)
    lister = actions.add_parser("list", help="list scheduled callbacks, the next due first")
    lister.add_argument("--campaign", help="only this campaign's")
    lister.add_argument("--all", action="store_true", help="include done and replaced callbacks")
    lister.add_argument("--json", action="store_true", help="one JSON array")
    add_config_argument(lister)
    lister.set_defaults(func=run_list)


async def _load(url: str, campaign: str | None, include_closed: bool) -> list[Callback]:
    store = await Store.open(url)
    try:
        return await list_callbacks(store, campaign=campaign, include_closed=include_closed)
    finally:
        await store.close()


def run_list(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        rows = asyncio.run(_load(config.database.url, args.campaign, args.all))
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": c.id,
                        "campaign": c.campaign,
                        "lead": c.lead_id,
                        "number": c.phone,
                        "agent": c.agent_id,
                        "due_at": c.due_at.isoformat() + "Z",
                        "state": c.state,
                        "attempt": c.attempt_id,
                    }
                    for c in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        print("no callbacks scheduled")
        return 0
    print(f"{'id':>5}  {'due (UTC)':<20} {'campaign':<16} {'number':<16} {'agent':<12} state")
    for c in rows:
        due = c.due_at.isoformat(sep=" ", timespec="seconds")
        print(f"{c.id:>5}  {due:<20} {c.campaign:<16} {c.phone:<16} {c.agent_id or 'anyone':<12} {c.state}")
    return 0
