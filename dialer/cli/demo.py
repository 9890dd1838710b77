"""`dialer demo`: the whole product on the embedded defaults, in one command.

Builds (or reuses) the sandbox — a real Asterisk and simulated phones —,
writes a daemon config for it, imports the sample leads, runs the sample
campaign with live progress until every lead is done, prints the report and
stops everything it started. Ctrl-C stops early, just as cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import yaml

from dialer.cli.context import CommandError, fail, read_campaigns, read_config
from dialer.cli.leads import import_rows
from dialer.cli.progress import ProgressPrinter
from dialer.cli.report import campaign_report
from dialer.cli.run import serve
from dialer.config.campaign_rules import NumberFormat
from dialer.config.loader import load_campaign_dir
from dialer.daemon.server import StartupError
from dialer.leads.csv_import import parse_leads_csv
from dialer.logs import configure_logging
from dialer.report import render_text
from dialer.sandbox import Sandbox, SandboxError, SandboxPorts

PROJECT_DIR = Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the sample campaign against the bundled sandbox Asterisk")
    parser.add_argument("--workdir", type=Path, default=Path("var/demo"), help="where the demo keeps its files")
    parser.add_argument("--campaign-dir", type=Path, default=PROJECT_DIR / "campaigns")
    parser.add_argument("--campaign", default="sample")
    parser.add_argument("--leads", type=Path, default=PROJECT_DIR / "campaigns" / "sample-leads.csv")
    parser.add_argument("--agents", type=int, default=3, help="simulated agent phones")
    parser.add_argument("--port-offset", type=int, default=0, help="shift every sandbox port")
    parser.add_argument("--keep-sandbox", action="store_true", help="leave the sandbox running afterwards")
    parser.set_defaults(func=run)


def write_config(workdir: Path, campaign_dir: Path, queues: list[str], state) -> Path:
    """A daemon config for the sandbox, written as an ops team would write one."""
    secret_file = workdir / "ami-secret"
    # Private before the secret is in it, not after.
    secret_file.unlink(missing_ok=True)
    secret_file.touch(mode=0o600)
    secret_file.chmod(0o600)
    secret_file.write_text(state.ami.secret + "\n")
    config = {
        "ami": [
            {
                "host": state.ami.host,
                "port": state.ami.port,
                "username": state.ami.username,
                "secret_file": str(secret_file.resolve()),
            }
        ],
        "database": {"url": f"sqlite+aiosqlite:///{(workdir / 'dialer.db').resolve()}"},
        "campaign_dir": str(campaign_dir.resolve()),
        "logging": {"level": "info", "format": "json"},
        "agents": [
            {"id": agent.id, "interface": agent.interface, "queues": queues} for agent in state.agents
        ],
    }
    path = workdir / "dialer.yaml"
    path.write_text("# Written by `dialer demo` for its sandbox.\n" + yaml.safe_dump(config, sort_keys=False))
    return path


def run(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("dialer.db", "dialer.db-wal", "dialer.db-shm"):
        (workdir / stale).unlink(missing_ok=True)  # each demo starts from an empty database
    log_file = (workdir / "dialer.log").open("w")
    configure_logging("info", "json", stream=log_file)
    sandbox = Sandbox(workdir / "sandbox", SandboxPorts.offset(args.port_offset), agents=args.agents)
    try:
        print("Starting the sandbox (a real Asterisk 22 and simulated phones)...", flush=True)
        state = sandbox.up(progress=lambda line: print(f"  {line}", flush=True))
        campaigns_probe, _ = load_campaign_dir(args.campaign_dir)
        campaign = campaigns_probe.get(args.campaign)
        if campaign is None:
            return fail(f"no campaign {args.campaign!r} in {args.campaign_dir}")
        config_path = write_config(workdir, args.campaign_dir, [campaign.queue], state)
        config = read_config(config_path)
        # The sandbox's customers have lab numbers (not E.164), and a demo that
        # retried busy numbers an hour later would never finish.
        campaigns = {
            n: c.model_copy(update={"numbers": c.numbers.model_copy(update={"format": NumberFormat.as_is}), "retries": {}})
            for n, c in read_campaigns(config, strict=False).items()
            if n == args.campaign
        }
        campaign = campaigns[args.campaign]
        parsed = parse_leads_csv(args.leads, campaign.numbers.policy(config.default_region))
        for error in parsed.errors:
            print(f"{args.leads}:{error.line}: {error.column or 'row'}: {error.message}", file=sys.stderr)
        summary = asyncio.run(
            import_rows(config.database.url, campaign.name, campaign.type.value, parsed.rows, tiers=(campaign, config.tiers))
        )
        print(
            f"Campaign {campaign.name}: {summary.added} leads, {len(state.agents)} agents, "
            f"mode {campaign.dialing.mode.value}. Ctrl-C stops. Log: {workdir / 'dialer.log'}",
            flush=True,
        )
        printer = ProgressPrinter(interval=2.0)
        asyncio.run(serve(config, campaigns, until_done=True, progress=printer, drain_timeout=30.0))
        report = asyncio.run(campaign_report(config.database.url, campaign.name))
        print()
        print(render_text(report))
        print(
            f"\nAgain as JSON: dialer report {campaign.name} --json --config {config_path}"
            f"\nDaemon log: {workdir / 'dialer.log'}"
        )
        return 0
    except (SandboxError, CommandError, StartupError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    finally:
        if not args.keep_sandbox:
            print("Stopping the sandbox...", flush=True)
            sandbox.down()
        log_file.close()
