"""`dialer desk set-secret USER`: give an agent or supervisor their desk secret.

    dialer desk set-secret agent1                          # an agent of the config
    dialer desk set-secret alice --role supervisor --phone PJSIP/sup1

The secret is read from the terminal (twice), or from standard input when it is
not a terminal (one line). Only its scrypt hash is written, to the file the
config's `http.desk_users_file` names (created mode 0600, replaced atomically);
the running daemon reads it at each sign-in. The admin signs in as `admin` with
the API token and has no desk secret.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.http.desk_auth import DeskUsersError, Role, set_user


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("desk", help="agent desk and supervisor page users")
    actions = parser.add_subparsers(dest="desk_command", metavar="ACTION", required=True)
    secret = actions.add_parser("set-secret", help="set a user's secret (hashed) in http.desk_users_file")
    secret.add_argument("user", help="an agent id of the config, or a supervisor's id")
    secret.add_argument("--role", choices=[Role.agent.value, Role.supervisor.value], default=Role.agent.value)
    secret.add_argument("--phone", help="a supervisor's own phone (e.g. PJSIP/sup1): listen/whisper/barge ring it")
    add_config_argument(secret)
    secret.set_defaults(func=run)


def _read_secret() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("secret: ")
    if getpass.getpass("again: ") != first:
        raise CommandError("the two secrets differ")
    return first


def run(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        if config.http is None or config.http.desk_users_file is None:
            raise CommandError("the config has no http.desk_users_file: add one to use the agent desk")
        role = Role(args.role)
        if role is Role.agent and args.user not in {a.id for a in config.agents}:
            raise CommandError(f"{args.user!r} is not an agent of the config (agents[].id)")
        set_user(config.http.desk_users_file, args.user, role, _read_secret(), args.phone)
    except (CommandError, DeskUsersError, OSError) as exc:
        return fail(str(exc))
    print(f"secret set for {args.user} ({role.value}) in {config.http.desk_users_file}")
    return 0
