"""The `dialer` command: one argparse parser, one module per subcommand.

Each command module exposes `register(subparsers)`, which adds its parser and
sets `func` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dialer import __version__

# Module names under dialer.cli, in the order `dialer --help` lists them.
COMMAND_MODULES = [
    "run",
    "demo",
    "validate",
    "leads",
    "report",
    "sandbox",
    "simulate",
    "status",
    "campaign",
    "db",
    "dnc",
    "callbacks",
    "events",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialer", description="Predictive outbound dialer for Asterisk.")
    parser.add_argument("--version", action="version", version=f"dialer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"dialer.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
