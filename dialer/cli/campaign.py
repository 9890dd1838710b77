"""`dialer campaign start|pause|resume|stop NAME [--now]`, through the running daemon's API.

pause/resume: a break; stop: the campaign places no more calls until `start`.
A stop while the campaign's abandon rate is over its limit settles first: it dials
progressively until the rate is at the limit, then stops; `--now` stops at once anyway.
Calls in progress always finish.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.control.campaign_states import percent
from dialer.http.client import ApiRefused, ApiUnavailable, call

ACTIONS = ("start", "pause", "resume", "stop")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("campaign", help="start, pause, resume or stop a running campaign")
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("name", help="campaign name")
    parser.add_argument(
        "--now",
        action="store_true",
        help="stop only: at once, even while the abandon rate is over its limit (logged as such)",
    )
    add_config_argument(parser)
    parser.set_defaults(func=run)


def answer(result: dict[str, Any]) -> str:
    line = f"{result['name']}: {result['state']}"
    if result.get("answers_needed") is not None:
        abandon = result.get("abandon") or {}
        line += (
            f" ({result['answers_needed']} more live answer(s) bridged in time bring the abandon rate"
            f" {percent(abandon.get('rate', 0.0))} to its limit {percent(abandon.get('limit', 0.0))};"
            " `--now` stops at once)"
        )
    return line


def run(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.name):
        return fail(f"{args.name!r} is not a campaign name (letters, digits, - and _)")
    if args.now and args.action != "stop":
        return fail("--now goes with stop only")
    try:
        config = read_config(args.config)
        body = {"now": True} if args.now else None
        result = call(config, "POST", f"/campaigns/{args.name}/{args.action}", body)
    except ApiRefused as exc:
        return fail(f"{args.name}: {exc.message}")
    except (CommandError, ApiUnavailable) as exc:
        return fail(str(exc))
    print(answer(result))
    if result.get("warning"):
        print(f"dialer: warning: {args.name}: {result['warning']}", file=sys.stderr)
    return 0
