"""`dialer sandbox up|down|status`: a real Asterisk with SIPp carrier and phones."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dialer.sandbox import Sandbox, SandboxError, SandboxPorts


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run a local Asterisk with simulated carrier and agent phones",
        description="Run Asterisk 22 (Debian, in a cached chroot) with SIPp playing the carrier, "
        "its customers and the agent phones, all on 127.0.0.1. Needs root.",
    )
    actions = parser.add_subparsers(dest="sandbox_action", metavar="ACTION", required=True)
    for name, func, text in (
        ("up", _up, "start the sandbox (or reuse a running one)"),
        ("down", _down, "stop the sandbox's processes"),
        ("status", _status, "show which processes run, ports and logs"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--workdir", type=Path, default=Path("var/sandbox"), help="state and logs (default: ./var/sandbox)"
        )
        action.add_argument(
            "--port-offset", type=int, default=0, metavar="N", help="shift every port by N (run beside another)"
        )
        if name == "up":
            action.add_argument("--agents", type=int, default=3, metavar="N", help="agent phones (default: 3)")
        if name == "status":
            action.add_argument("--json", action="store_true", help="print the status as JSON")
        action.set_defaults(func=func)


def _sandbox(args: argparse.Namespace) -> Sandbox:
    return Sandbox(args.workdir, ports=SandboxPorts.offset(args.port_offset), agents=getattr(args, "agents", 3))


def _up(args: argparse.Namespace) -> int:
    sandbox = _sandbox(args)
    try:
        state = sandbox.up(progress=lambda message: print(message, flush=True))
    except SandboxError as exc:
        print(f"dialer sandbox up: {exc}", file=sys.stderr)
        return 1
    print(f"AMI: host {state.ami.host} port {state.ami.port} user {state.ami.username} (secret in the state file)")
    print(f"SIP: 127.0.0.1:{state.ports.sip}; campaigns dial {state.carrier_trunk}")
    print(f"agents: {', '.join(agent.interface for agent in state.agents)}")
    print(f"state: {sandbox.state_path}")
    return 0


def _down(args: argparse.Namespace) -> int:
    sandbox = _sandbox(args)
    sandbox.down()
    print(f"sandbox in {sandbox.workdir} stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _sandbox(args).status()
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(f"sandbox {status['instance']} in {status['workdir']}: {'running' if status['running'] else 'not running'}")
        for name, proc in status["processes"].items():
            print(f"  {name:<9} pid {proc['pid']:<8} {'alive' if proc['alive'] else 'dead'}")
        if "ami" in status:
            ami = status["ami"]
            print(f"  AMI {ami['host']}:{ami['port']} user {ami['username']}")
            for name, path in status["logs"].items():
                print(f"  {name} log: {path}")
    return 0 if status["running"] else 3
