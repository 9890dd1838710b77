"""A daemon with a real store and campaign directory on the simulated PBX, for the API and watcher tests.

The real AMI is the sandbox tests' business.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dialer.config.loader import load_config
from dialer.config.models import AgentConfig
from dialer.daemon.campaign_watcher import CampaignWatcher
from dialer.daemon.server import Daemon
from dialer.pbx.simulated import SimulatedPbx
from dialer.store.store import Store

TOKEN = "s3cret-token-for-tests"
DEFAULT_AGENTS = (
    AgentConfig(id="agent1", name="Alice", interface="PJSIP/agent1", queues=["sales"]),
    AgentConfig(id="agent2", interface="PJSIP/agent2", queues=["sales", "vip"]),
)


class FakeAmi(SimulatedPbx):
    """The simulated PBX, its agents logged in to their queues, keeping `sent` as these tests read it.

    `sent`: every action the daemon asked for since, an Originate by its arguments.
    """

    def __init__(self, agents: Iterable[AgentConfig] = DEFAULT_AGENTS) -> None:
        agents = list(agents)
        queues = {q for a in agents for q in a.queues} | {"sales", "support", "retention", "key-accounts"}
        super().__init__(random.Random(0), {}, agents=[a.interface for a in agents], queues=sorted(queues))
        # As the daemon's login leaves it: every agent in its queues.
        self.logged_in((q, a.interface, a.id, a.penalty) for a in agents for q in a.queues)
        self.sent: list[dict[str, Any]] = []
        self._originating = False

    async def action(self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None) -> Any:
        if not self._originating:
            self.sent.append(dict(fields))
        return await super().action(fields, as_list=as_list, timeout=timeout)

    async def originate(self, **kwargs: Any) -> None:
        self.sent.append({"Action": "Originate", **kwargs})
        self._originating = True
        try:
            await super().originate(**kwargs)
        finally:
            self._originating = False


def campaign_yaml(name: str, *, max_lines: int = 5, enabled: bool = True, queue: str = "sales") -> str:
    return yaml.safe_dump(
        {
            "name": name,
            "type": "telemarketing",
            "enabled": enabled,
            "trunk": "PJSIP/{number}@carrier",
            "caller_id": "+15550100",
            "queue": queue,
            "dialing": {"max_lines": max_lines},
        }
    )


def write_config(tmp: Path, *, agents: list[dict[str, Any]] | None = None, level: str = "info") -> Path:
    (tmp / "campaigns").mkdir(exist_ok=True)
    path = tmp / "dialer.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "ami": [{"username": "dialer", "secret": "x"}],
                "database": {"url": "sqlite+aiosqlite:///dialer.db"},
                "campaign_dir": "campaigns",
                "logging": {"level": level},
                "agents": agents
                if agents is not None
                else [
                    {"id": "agent1", "name": "Alice", "interface": "PJSIP/agent1", "queues": ["sales"]},
                    {"id": "agent2", "interface": "PJSIP/agent2", "queues": ["sales", "vip"]},
                ],
                "http": {"port": 0, "token": TOKEN},
            }
        )
    )
    return path


async def open_daemon(tmp: Path) -> Daemon:
    """A daemon as after `startup()`, with the fake AMI; close with `close_daemon`."""
    config_path = write_config(tmp) if not (tmp / "dialer.yaml").exists() else tmp / "dialer.yaml"
    config = load_config(config_path)
    daemon = Daemon(config, {}, config_path=config_path, watch_campaigns=True)
    daemon.store = await Store.open(config.database.url)
    daemon.ami = FakeAmi(config.agents)
    daemon.metrics.instrument_engine(daemon.store.engine)
    daemon.watcher = CampaignWatcher(daemon, config.campaign_dir)
    await daemon.watcher.reload()
    return daemon


async def close_daemon(daemon: Daemon) -> None:
    if daemon.http is not None:
        await daemon.http.stop()
    assert daemon.store is not None
    await daemon.store.close()
