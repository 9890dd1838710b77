"""A daemon with a real store and campaign directory but a fake AMI, for the API and watcher tests.

The fake records the actions it is sent and answers them at once; the real AMI
is the sandbox tests' business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialer.config.loader import load_config
from dialer.daemon.campaign_watcher import CampaignWatcher
from dialer.daemon.server import Daemon
from dialer.store.store import Store

TOKEN = "s3cret-token-for-tests"


@dataclass
class FakeAmi:
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    reconnects: int = 0
    on_action: Any = None
    sent: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connected.set()

    async def action(self, fields: Mapping[str, Any], **_: Any) -> dict[str, str]:
        self.sent.append(dict(fields))
        if self.on_action:
            self.on_action(str(fields.get("Action")), 0.001)
        return {"Response": "Success"}

    async def queue_add(self, queue: str, interface: str, member_name: str, penalty: int = 0) -> None:
        await self.action({"Action": "QueueAdd", "Queue": queue, "Interface": interface, "MemberName": member_name})

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self.action({"Action": "QueueRemove", "Queue": queue, "Interface": interface})

    async def originate(self, **kwargs: Any) -> None:
        await self.action({"Action": "Originate", **kwargs})


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
    daemon.ami = FakeAmi()  # type: ignore[assignment]
    daemon.metrics.instrument_engine(daemon.store.engine)
    daemon.watcher = CampaignWatcher(daemon, config.campaign_dir)
    await daemon.watcher.reload()
    return daemon


async def close_daemon(daemon: Daemon) -> None:
    if daemon.http is not None:
        await daemon.http.stop()
    assert daemon.store is not None
    await daemon.store.close()
