"""What reaches the FastAGI port cannot freeze or fill the daemon (found attacking issue 11).

panoramisk read the AGI environment in a loop that spun for ever, without yielding,
once the peer closed before the blank line ending it: one short write from any
local process froze the daemon's event loop. A connection sending nothing was kept
for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.config.loader import load_config
from dialer.ivr.service import IvrService


class NoStore:
    async def start_survey(self, *args: Any) -> None: ...
    async def add_answer(self, *args: Any) -> None: ...
    async def end_survey(self, *args: Any) -> None: ...
    async def opt_out(self, *args: Any) -> bool:
        return True


@pytest.fixture
async def ivr(tmp_path: Path) -> AsyncIterator[IvrService]:
    (tmp_path / "campaigns").mkdir()
    path = tmp_path / "dialer.yaml"
    path.write_text(yaml.safe_dump({
        "ami": [{"username": "dialer", "secret": "x"}], "campaign_dir": "campaigns", "agi": {"port": 0},
    }))
    service = await IvrService.prepare(load_config(path), [])

    async def notify(record: object) -> None:
        pass

    await service.start(lambda: [], NoStore(), notify)  # type: ignore[arg-type]
    try:
        yield service
    finally:
        await service.stop()


async def test_a_peer_closing_before_the_environment_ends_does_not_freeze_the_loop(ivr: IvrService) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", ivr.port)
    writer.write(b"agi_network_script: dialer-ivr\nagi_arg_1: 1234")  # no blank line
    await writer.drain()
    writer.close()
    started = time.monotonic()
    for _ in range(20):  # the loop must go on turning
        await asyncio.sleep(0.01)
    assert time.monotonic() - started < 2.0
    # And the server still answers a real call's environment (no route for it: closed).
    reader, writer = await asyncio.open_connection("127.0.0.1", ivr.port)
    writer.write(b"agi_network_script: nowhere\nagi_arg_1: 1\n\n")
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_a_silent_connection_is_closed(ivr: IvrService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dialer.ivr.agi_server.ENV_TIMEOUT_S", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", ivr.port)
    try:
        assert await asyncio.wait_for(reader.read(), 3) == b""
    finally:
        writer.close()
