"""`dialer run`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from dialer.cli.context import CommandError, add_config_argument, fail, read_campaigns, read_config
from dialer.cli.progress import ProgressPrinter
from dialer.config.models import Campaign, DialerConfig
from dialer.daemon.server import Daemon, StartupError
from dialer.logs import configure_logging


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the dialer daemon")
    add_config_argument(parser)
    parser.add_argument("--until-done", action="store_true", help="exit once every campaign has no leads left")
    parser.add_argument("--progress", action="store_true", help="print live progress to stdout")
    parser.add_argument(
        "--drain-timeout", type=float, default=None, help="seconds to let calls finish on stop (default: drain_timeout of the config)"
    )
    parser.set_defaults(func=run)


async def serve(
    config: DialerConfig,
    campaigns: dict[str, Campaign],
    *,
    until_done: bool,
    progress: ProgressPrinter | None,
    drain_timeout: float | None,
    config_path: Path | None = None,
) -> int:
    """Run a daemon in this event loop with SIGINT/SIGTERM wired to its flags.

    Given `config_path`, the daemon also follows its campaign directory and
    reloads the config on SIGHUP.
    """
    daemon = Daemon(
        config,
        campaigns,
        until_done=until_done,
        on_progress=progress,
        drain_timeout=drain_timeout,
        watch_campaigns=config_path is not None,
        config_path=config_path,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, daemon.handle_exit)
    if config_path is not None:
        loop.add_signal_handler(signal.SIGHUP, daemon.handle_reload)
    try:
        return await daemon.serve()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if progress:
            progress.close()


def run(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        configure_logging(config.logging.level, config.logging.format)
        campaigns = read_campaigns(config, strict=False)
    except CommandError as exc:
        return fail(str(exc))
    if not campaigns:
        print(f"dialer: no valid campaign in {config.campaign_dir}; waiting for none", file=sys.stderr)
    progress = ProgressPrinter() if args.progress else None
    try:
        return asyncio.run(
            serve(
                config,
                campaigns,
                until_done=args.until_done,
                progress=progress,
                drain_timeout=args.drain_timeout,
                config_path=args.config,
            )
        )
    except StartupError as exc:
        return fail(f"cannot start: {exc}")
