"""SIGHUP with changed agents: every part of the daemon that reads the agent board sees the new agents.

Before, the reload built a second board and re-pointed only the daemon and the runners: the
tier code (reserved teams, lending) and inbound callbacks kept reading the old one, so an
agent added by a reload was never lent, never offered a callback, and one removed still was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from ops_fixtures import campaign_yaml, close_daemon, open_daemon, write_config

from dialer.core import records as r
from dialer.daemon.campaign_watcher import reload_config
from dialer.daemon.server import Daemon


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        if handle.inbound is not None:
            await handle.inbound.close()
        await close_daemon(handle)


def member_added(interface: str, *, at: float) -> r.MemberStatus:
    return r.MemberStatus(at=at, queue="sales", interface=interface, status=1, paused=False, in_call=False)


def in_sales(board_holder: object) -> list[str]:
    return sorted(a.id for a in board_holder.board.in_queue("sales"))  # type: ignore[attr-defined]


async def test_a_reload_that_changes_the_agents_reaches_every_reader_of_the_board(daemon: Daemon) -> None:
    assert daemon.watcher is not None and daemon.config_path is not None
    (daemon.config.campaign_dir / "spring.yaml").write_text(campaign_yaml("spring"))
    await daemon.watcher.reload()
    runner = daemon.runners["spring"]
    await daemon._start_ivr()  # the daemon's own wiring of inbound callbacks (no flow: no FastAGI server)
    assert daemon.inbound is not None
    for interface in ("PJSIP/agent1", "PJSIP/agent2"):
        daemon.board.apply(member_added(interface, at=1.0))

    data = yaml.safe_load(daemon.config_path.read_text())
    data["agents"] = [
        {"id": "agent1", "interface": "PJSIP/agent1", "queues": ["sales"]},
        {"id": "agent3", "interface": "PJSIP/agent3", "queues": ["sales"]},
    ]
    daemon.config_path.write_text(yaml.safe_dump(data))
    assert (await reload_config(daemon, daemon.config_path)).applied == ["agents"]
    # Asterisk confirms the new member, as its QueueMemberAdded does; the daemon's consumer
    # applies it to the daemon's board.
    assert daemon.board.apply(member_added("PJSIP/agent3", at=2.0)) is not None

    assert in_sales(daemon) == ["agent1", "agent3"]  # agent1 kept its queues: it stayed
    assert in_sales(runner) == ["agent1", "agent3"]
    assert in_sales(runner.tiers) == ["agent1", "agent3"]  # reserved teams and lending
    assert in_sales(daemon.inbound) == ["agent1", "agent3"]  # callbacks offered to agents
    assert daemon.inbound.agent_ids == {"pjsip/agent1": "agent1", "pjsip/agent3": "agent3"}
    assert daemon.desk is None or sorted(daemon.desk.agents) == ["agent1", "agent3"]
