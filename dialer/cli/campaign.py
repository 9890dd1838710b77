"""`dialer campaign start|pause|resume|stop NAME`, through the running daemon's API.

pause/resume: a break; stop: the campaign places no more calls until `start`.
Calls in progress always finish.
"""

from __future__ import annotations

import argparse
import re

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.http.client import ApiRefused, ApiUnavailable, call

ACTIONS = ("start", "pause", "resume", "stop")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("campaign", help="start, pause, resume or stop a running campaign")
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("name", help="campaign name")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.name):
        return fail(f"{args.name!r} is not a campaign name (letters, digits, - and _)")
    try:
        config = read_config(args.config)
        result = call(config, "POST", f"/campaigns/{args.name}/{args.action}")
    except ApiRefused as exc:
        return fail(f"{args.name}: {exc.message}")
    except (CommandError, ApiUnavailable) as exc:
        return fail(str(exc))
    print(f"{result['name']}: {result['state']}")
    return 0
