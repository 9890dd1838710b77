"""`dialer status [--json]`: the running daemon's state, from its control API.

Exit status: 0 healthy, 1 the daemon answers but is not healthy (AMI down,
campaign files it could not take, or a trunk backed off after repeated
refusals), 2 no daemon answers.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.http.client import ApiRefused, ApiUnavailable, call


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="the running daemon's campaigns, agents and problems")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def render(status: dict[str, Any]) -> str:
    head = (
        f"AMI {'connected' if status['ami_connected'] else 'NOT CONNECTED'}, "
        f"{status['agents_logged_in']} agent(s) logged in, {status['agents_busy']} busy, "
        f"up {status['uptime_seconds']:.0f} s{', DRAINING' if status['draining'] else ''}"
    )
    lines = [head]
    if status["campaigns"]:
        lines.append(f"  {'campaign':<20} {'state':<9} {'lines':>5} {'ringing':>7} {'waiting':>7} {'talking':>7}  done/total")
        for c in status["campaigns"]:
            up = c["ringing"] + c["waiting"] + c["talking"]
            line = (
                f"  {c['name']:<20} {c['state']:<9} {up:>5} {c['ringing']:>7} {c['waiting']:>7} {c['talking']:>7}"
                f"  {c['done']}/{c['total']}"
            )
            if c.get("answers_needed") is not None:
                line += f"  (over its abandon limit: {c['answers_needed']} more live answer(s) before it ends)"
            lines.append(line)
    else:
        lines.append("  no campaigns")
    for trunk in status.get("trunks", []):
        state = (
            f"BACKED OFF after {trunk['consecutive_refusals']} refusal(s) in a row, "
            f"next try in {trunk['backoff_seconds_left']:.0f} s: {trunk['last_error']}"
            if trunk["backed_off"]
            else f"ok, {trunk['refusals']} refusal(s)"
        )
        lines.append(f"  trunk {trunk['name']:<14} {trunk['calls_per_second']:g} calls/s, {state}")
    for hook in status.get("webhooks", []):
        line = (
            f"  webhook {hook['campaign']}/{hook['webhook']}: {hook['delivered']} delivered, "
            f"{hook['pending']} pending, {hook['dead']} dead letter(s)"
        )
        if hook["dead"] and hook["last_error"]:
            line += f" (last error: {hook['last_error']}; `dialer webhooks requeue`)"
        lines.append(line)
    if status["config_issues"]:
        lines.append("problems in campaign files (the last good version keeps running):")
        lines.extend(f"  {issue}" for issue in status["config_issues"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        status = call(config, "GET", "/status")
    except (CommandError, ApiUnavailable, ApiRefused) as exc:
        return fail(str(exc))
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0 if _healthy(status) else 1


def _healthy(status: dict[str, Any]) -> bool:
    backed_off = any(t["backed_off"] for t in status.get("trunks", []))
    return bool(status["ami_connected"]) and not status["config_issues"] and not backed_off
