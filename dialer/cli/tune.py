"""`dialer tune CAMPAIGN [--apply]`: the pacing settings that keep the campaign's
agents busiest under its abandon limit, found by replaying its recent calls
through the simulator."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.config.loader import ConfigError, load_campaign_dir, yaml_files_in
from dialer.config.models import Campaign, DialerConfig
from dialer.config.yaml_loader import YamlError, load_yaml_mapping
from dialer.store.store import Store, StoreError, UnknownCampaign
from dialer.tuning.campaign_edit import CampaignFileError, apply_changes
from dialer.tuning.history import MIN_ATTEMPTS, MIN_CONVERSATIONS, HistoryTooShort, check_enough, read_history
from dialer.tuning.search import Proposal, tune


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "tune",
        help="propose (or --apply) the pacing settings that keep agents busiest under the abandon limit",
        description=(
            "Replay the campaign's recent calls (answer rate and times, talk and wrap-up times, by hour of "
            "day) through the simulator under candidate pacing settings; print the best, its expected "
            f"figures and why. Needs at least {MIN_ATTEMPTS} finished calls and {MIN_CONVERSATIONS} "
            "conversations in the period."
        ),
    )
    parser.add_argument("campaign")
    parser.add_argument("--apply", action="store_true",
                        help="write the proposal into the campaign file (only the changed fields, in place)")
    parser.add_argument("--days", type=float, default=14.0, help="history to replay, in days (default 14)")
    parser.add_argument("--agents", type=int, default=None,
                        help="agents to plan for (default: the config's agents in the campaign's queue)")
    parser.add_argument("--hours", type=float, default=4.0, help="simulated hours per setting and seed (default 4)")
    parser.add_argument("--seeds", type=int, default=2, help="simulated days per setting (default 2)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def campaign_file(config: DialerConfig, name: str) -> tuple[Path | None, Campaign | None, str | None]:
    """The file that defines campaign `name`, its settings, and why it cannot be used (if so)."""
    campaigns, issues = load_campaign_dir(config.campaign_dir)
    directory = Path(config.campaign_dir)
    path = None
    for file in yaml_files_in(directory) if directory.is_dir() else []:
        try:
            data = load_yaml_mapping(file, within=directory).data
        except (YamlError, ConfigError, OSError):
            continue
        if data.get("name") == name:
            path = file
            break
    problems = [str(i) for i in issues if path is not None and Path(i.file) == path]
    if path is not None and name not in campaigns:
        return path, None, "; ".join(problems) or f"{path}: the file has problems (dialer validate)"
    return path, campaigns.get(name), None


async def _attempts(url: str, name: str) -> list[dict[str, Any]] | None:
    store = await Store.open(url)
    try:
        try:
            campaign_id = await store.campaign_id(name)
        except UnknownCampaign:
            return None
        return await store.attempts(campaign_id)
    finally:
        await store.close()


def _progress(done: int, total: int, what: str) -> None:
    line = f"tune: {done}/{total} settings simulated ({what})"
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    for option, value in (("--days", args.days), ("--hours", args.hours), ("--seeds", args.seeds)):
        if not value > 0:
            return fail(f"tune: {option} must be positive")
    if args.seeds > 20 or args.hours > 48 or args.days > 3660:
        return fail("tune: at most 20 seeds, 48 simulated hours and 3660 days of history")
    if args.agents is not None and not 1 <= args.agents <= 10_000:
        return fail("tune: --agents must be between 1 and 10000")
    try:
        config = read_config(args.config)
        path, campaign, problem = campaign_file(config, args.campaign)
        rows = asyncio.run(_attempts(config.database.url, args.campaign))
    except (CommandError, StoreError, OSError) as exc:
        return fail(str(exc))
    if path is None and rows is None:
        return fail(f"tune: unknown campaign {args.campaign!r}: no campaign file in {config.campaign_dir} "
                    "and nothing in the database")
    if campaign is None:
        where = problem if path is not None else f"no campaign file for it in {config.campaign_dir}"
        return fail(f"tune: campaign {args.campaign!r}: {where}; its current settings are needed")
    history = read_history(rows or [], now=datetime.now(UTC).replace(tzinfo=None), days=args.days)
    try:
        check_enough(history, days=args.days)
    except HistoryTooShort as exc:
        return fail(f"tune: {args.campaign}: {exc}")
    agents = args.agents
    if agents is None:
        agents = sum(1 for a in config.agents if campaign.queue in a.queues) or history.agents
    if agents <= 0:
        return fail(f"tune: no agents in queue {campaign.queue} in the config and none in the history; "
                    "say how many with --agents")
    proposal = tune(history, campaign.dialing, agents=agents, hours=args.hours, seeds=args.seeds,
                    progress=_progress)
    written = None
    if args.apply and proposal.changes:
        assert path is not None
        try:
            apply_changes(path, proposal.changes)
        except CampaignFileError as exc:
            print(render(proposal, args.campaign), file=sys.stderr)
            return fail(f"tune: cannot apply: {exc}")
        written = str(path)
    if args.json:
        print(json.dumps(as_json(proposal, args.campaign, written), indent=2))
    else:
        print(render(proposal, args.campaign))
        if args.apply:
            print(f"\nWritten into {written}; a running daemon applies it within a second." if written
                  else "\nNothing to write: the current settings are the best found.")
        elif proposal.changes:
            print(f"\nApply with: dialer tune {args.campaign} --apply")
    return 0


def render(proposal: Proposal, name: str) -> str:
    lines = [f"Campaign {name}, {proposal.agents} agents; simulated abandons must stay under "
             f"{proposal.ceiling:.1%}", "", f"  {'setting':<38} {'occupancy':>9} {'abandon':>8} {'worst':>7}"]
    for o in proposal.tried:
        mark = "*" if o.settings == proposal.best.settings else ("=" if o is proposal.current else " ")
        lines.append(f"{mark} {o.settings.label():<38} {o.occupancy:>9.3f} {o.abandon_rate:>8.2%} "
                     f"{o.worst_abandon_rate:>7.2%}")
    lines += ["", "(= current, * proposed)", ""]
    if proposal.changes:
        lines.append("Proposed dialing settings:")
        lines += [f"  {field}: {value}" for field, value in proposal.changes.items()]
    else:
        lines.append("No change proposed.")
    lines += ["", "Why:"] + [f"  {line}" for line in proposal.why]
    return "\n".join(lines)


def as_json(proposal: Proposal, name: str, written: str | None) -> dict[str, Any]:
    def figures(o: Any) -> dict[str, Any]:
        return {"setting": o.settings.label(), "mode": o.settings.mode.value, "ratio": o.settings.ratio,
                "abandon_target": o.settings.abandon_target, "max_lines": o.settings.max_lines,
                "occupancy": round(o.occupancy, 4), "abandon_rate": round(o.abandon_rate, 4),
                "worst_abandon_rate": round(o.worst_abandon_rate, 4),
                "connects_per_agent_hour": round(o.connects_per_agent_hour, 2)}

    return {"campaign": name, "agents": proposal.agents, "abandon_ceiling": proposal.ceiling,
            "current": figures(proposal.current), "proposed": figures(proposal.best),
            "changes": proposal.changes, "why": proposal.why, "tried": [figures(o) for o in proposal.tried],
            "written": written}
