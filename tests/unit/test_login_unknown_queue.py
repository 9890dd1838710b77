"""One agent's queue that Asterisk does not know must not stop the whole dialer.

Found attacking issue 11: after each AMI login the daemon adds every agent to its
queues; a QueueAdd Asterisk refused ("Unable to add interface: No such queue", a typo
in dialer.yaml or a queue not yet in queues.conf) failed the login's set-up, the
gateway dropped the connection and logged in again, for ever: no campaign dialed,
calls in progress were followed only between drops, and start-up reconciliation never ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ops_fixtures import campaign_yaml, close_daemon, open_daemon, write_config

from dialer.ami.errors import AmiActionFailed
from dialer.daemon.server import Daemon


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    (tmp_path / "campaigns" / "spring.yaml").write_text(campaign_yaml("spring"))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


async def test_a_queue_asterisk_refuses_is_reported_and_the_rest_goes_on(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    ami: Any = daemon.ami
    added: list[tuple[str, str]] = []

    async def queue_add(queue: str, interface: str, member_name: str, penalty: int = 0) -> None:
        if queue == "vip":  # agent2's second queue is missing from queues.conf
            raise AmiActionFailed("QueueAdd", "Unable to add interface: No such queue")
        added.append((queue, interface))

    async def queue_members(queue: str) -> list[dict[str, str]]:
        if queue == "vip":
            raise AmiActionFailed("QueueStatus", "No such queue")
        return []

    monkeypatch.setattr(ami, "queue_add", queue_add)
    monkeypatch.setattr(ami, "queue_members", queue_members, raising=False)
    await daemon._after_login()
    assert added == [("sales", "PJSIP/agent1"), ("sales", "PJSIP/agent2")]
    assert daemon.runners["spring"].board_synced
