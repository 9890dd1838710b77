"""The `dialer` command: one argparse parser, one module per subcommand.

Each command module exposes `register(subparsers)`, which adds its parser and
sets `func` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dialer import __version__

# Command name -> one-line help, in the order `dialer --help` lists them. The
# module dialer.cli.<name> (dashes as underscores) is only imported for the
# command being run: the daemon's imports (FastAPI, SQLAlchemy...) would
# otherwise make every `dialer --help` slow.
COMMANDS = {
    "run": "run the dialer daemon",
    "demo": "run the sample campaign against the bundled sandbox Asterisk",
    "validate": "check config, campaign and IVR flow files",
    "leads": "manage a campaign's leads",
    "report": "a campaign's outcomes and abandon rate",
    "status": "the running daemon's campaigns, agents and problems",
    "campaign": "start, pause, resume or stop a running campaign",
    "callbacks": "scheduled callbacks",
    "webhooks": "disposition webhook deliveries and dead letters",
    "dnc": "manage the do-not-call lists",
    "desk": "agent desk and supervisor page users",
    "events": "customer events for revisit campaigns",
    "db": "database schema migrations",
    "sandbox": "the bundled sandbox: a real Asterisk with simulated phones",
    "simulate": "run the pacing in a seeded discrete-event simulation",
    "dst": "test the whole daemon by deterministic simulation with seeded faults",
    "tune": "propose (or apply) the pacing settings that keep a campaign's agents busiest",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command`, only that command's module is imported."""
    parser = argparse.ArgumentParser(prog="dialer", description="Predictive outbound dialer for Asterisk.")
    parser.add_argument("--version", action="version", version=f"dialer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        if command is None or name == command:
            module = importlib.import_module(f"dialer.cli.{name.replace('-', '_')}")
            module.register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def _command_in(argv: list[str]) -> str | None:
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = _command_in(argv)
    # An unknown command still gets argparse's own error, with the list of commands.
    parser = build_parser(command) if command else build_parser("")
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
