"""What several commands share: finding and loading the daemon config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dialer.config.loader import ConfigError, load_campaign_dir, load_config
from dialer.config.models import Campaign, DialerConfig

DEFAULT_CONFIG = Path("config/dialer.yaml")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("DIALER_CONFIG", DEFAULT_CONFIG)),
        help="the daemon config file (default: $DIALER_CONFIG or config/dialer.yaml)",
    )


class CommandError(Exception):
    """A user-facing error: printed as `dialer: <message>`, exit code 2."""


def read_config(path: Path) -> DialerConfig:
    if not path.exists():
        raise CommandError(f"{path}: no such config file (use --config or set DIALER_CONFIG)")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(f"invalid config:\n{exc}") from exc


def read_campaigns(config: DialerConfig, *, strict: bool) -> dict[str, Campaign]:
    campaigns, issues = load_campaign_dir(config.campaign_dir)
    for issue in issues:
        print(f"{issue}", file=sys.stderr)
    if issues and strict:
        raise CommandError(f"{len(issues)} problem(s) in {config.campaign_dir}")
    return campaigns


def fail(message: str) -> int:
    print(f"dialer: {message}", file=sys.stderr)
    return 2
