"""Set-up shared by the end-to-end campaign tests: config, campaign and leads files
for a sandbox, and the `dialer` command run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dialer.sandbox import SandboxState, read_agent_events, read_carrier_events


@dataclass
class Lab:
    dir: Path
    config: Path
    campaign: str

    def dialer(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "dialer", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"dialer {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def report(self) -> dict[str, Any]:
        return json.loads(self.dialer("report", self.campaign, "--json").stdout)


def make_lab(
    tmp: Path,
    sandbox: SandboxState,
    *,
    campaign: str,
    queue: str = "sales",
    dialing: dict[str, Any],
    agents: int | None = None,
    rules: dict[str, Any] | None = None,
) -> Lab:
    campaigns = tmp / "campaigns"
    campaigns.mkdir()
    (campaigns / f"{campaign}.yaml").write_text(
        yaml.safe_dump(
            {
                "name": campaign,
                "type": "telemarketing",
                "trunk": sandbox.carrier_trunk,
                "caller_id": "+15550100",
                "queue": queue,
                "dialing": dialing,
                # Sandbox numbers (`1030200007`) are not E.164, and a lab counts each call
                # once: no retries unless a test asks (`rules` overrides both).
                "numbers": {"format": "as_is"},
                "retries": {},
                **(rules or {}),
            }
        )
    )
    secret = tmp / "ami-secret"
    secret.write_text(sandbox.ami.secret)
    phones = sandbox.agents if agents is None else sandbox.agents[:agents]
    config = tmp / "dialer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": [
                    {
                        "host": sandbox.ami.host,
                        "port": sandbox.ami.port,
                        "username": sandbox.ami.username,
                        "secret_file": str(secret),
                    }
                ],
                "database": {"url": "sqlite+aiosqlite:///dialer.db"},
                "campaign_dir": "campaigns",
                "logging": {"level": "info", "format": "json"},
                "agents": [{"id": a.id, "interface": a.interface, "queues": [queue]} for a in phones],
            }
        )
    )
    return Lab(tmp, config, campaign)


def write_leads(path: Path, numbers: list[str]) -> Path:
    path.write_text("phone,name\n" + "".join(f"{n},Customer {i}\n" for i, n in enumerate(numbers, 1)))
    return path


@dataclass
class SippView:
    """What the SIPp carrier and agent phones saw for a set of numbers."""

    invites: Counter[str]
    answered: Counter[str]
    finals: Counter[int]
    cancelled: Counter[str]
    agent_attempts: Counter[str]  # X-Dialer-Attempt values of INVITEs the agent phones answered


def sipp_view(sandbox: SandboxState, numbers: set[str]) -> SippView:
    carrier = [e for e in read_carrier_events(sandbox) if e.number in numbers]
    agent_events = read_agent_events(sandbox)
    answered_calls = {e.call_id for e in agent_events if e.event == "answered"}
    return SippView(
        invites=Counter(e.number for e in carrier if e.event == "invite"),
        answered=Counter(e.number for e in carrier if e.event == "answered"),
        finals=Counter(e.status for e in carrier if e.event == "final" and e.status is not None),
        cancelled=Counter(e.number for e in carrier if e.event == "cancelled"),
        agent_attempts=Counter(
            e.attempt for e in agent_events if e.event == "invite" and e.attempt and e.call_id in answered_calls
        ),
    )
