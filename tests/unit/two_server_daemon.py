"""A daemon serving one campaign on two simulated Asterisk servers, a and b (agent1 on a,
agent3 on b): the set-up the per-server status and the desk's monitor tests share."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.daemon.server import Daemon
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store.store import Store


@asynccontextmanager
async def serving_two_servers(
    tmp_path: Path, config: dict[str, Any], customers: Callable[[str], Customer], db_name: str
) -> AsyncIterator[tuple[Daemon, dict[str, SimulatedPbx], Path]]:
    """Yields the serving daemon, its two PBXs by server name and its config file's path."""
    sims = {
        "a": SimulatedPbx(random.Random(1), customers, agents={"PJSIP/agent1": 0.02}, system_name="a"),
        "b": SimulatedPbx(random.Random(2), customers, agents={"PJSIP/agent3": 0.02}, system_name="b"),
    }
    config_path = tmp_path / "dialer.yaml"
    config_path.write_text(yaml.safe_dump(config))
    campaign = Campaign(name="spread", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 2},
                        # Around the clock: the test must not depend on the hour CI runs at.
                        calling_hours={"start": "00:00", "end": "24:00"})
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/{db_name}")
    try:
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=n + 2, phone=f"+1212555{n:04d}") for n in range(4)])
    finally:
        await store.close()
    daemon = Daemon(load_config(config_path), {"spread": campaign}, config_path=config_path, drain_timeout=0.5,
                    pbx_factory=lambda server, clock: sims[server.name].attach(server, clock))
    serving = asyncio.create_task(daemon.serve())
    try:
        yield daemon, sims, config_path
    finally:
        daemon.should_exit = True
        await asyncio.wait_for(serving, 20)
