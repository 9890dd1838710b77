"""`dialer status` and `dialer campaign ...` against a daemon's real HTTP server (fake AMI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from ops_fixtures import campaign_yaml, close_daemon, open_daemon, write_config

from dialer.cli.main import main
from dialer.daemon.server import Daemon
from dialer.http.service import start_http


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    (tmp_path / "campaigns" / "spring.yaml").write_text(campaign_yaml("spring"))
    (tmp_path / "campaigns" / "broken.yaml").write_text("name: broken\ntype: survey\n")
    handle = await open_daemon(tmp_path)
    handle.http = await start_http(handle)
    # The CLI reads the port from the config, as an operator's would.
    data = yaml.safe_load((tmp_path / "dialer.yaml").read_text())
    data["http"]["port"] = handle.http.port
    (tmp_path / "dialer.yaml").write_text(yaml.safe_dump(data))
    try:
        yield handle
    finally:
        await close_daemon(handle)


async def cli(*args: str) -> int:
    # The CLI blocks on its request; the daemon answering it runs in this loop.
    return await asyncio.to_thread(main, list(args))


async def test_status_text_json_and_exit_code(daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(tmp_path / "dialer.yaml")
    assert await cli("status", "--json", "--config", config) == 1  # a broken campaign file: not healthy
    status = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in status["campaigns"]] == ["spring"]
    assert status["config_issues"][0].startswith(f"{tmp_path / 'campaigns' / 'broken.yaml'}:1: ")
    (tmp_path / "campaigns" / "broken.yaml").unlink()
    assert daemon.watcher is not None
    await daemon.watcher.reload()
    assert await cli("status", "--config", config) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("AMI connected, 0 agent(s) logged in, 0 busy, up ")
    assert "spring" in text and "running" in text


async def test_campaign_commands(daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(tmp_path / "dialer.yaml")
    assert await cli("campaign", "pause", "spring", "--config", config) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "spring: paused"
    assert daemon.runners["spring"].paused
    assert await cli("campaign", "stop", "spring", "--config", config) == 0
    assert await cli("campaign", "resume", "spring", "--config", config) == 2
    assert capsys.readouterr().err == "dialer: spring: campaign 'spring' is stopped; start it instead\n"
    assert await cli("campaign", "start", "spring", "--config", config) == 0
    assert not daemon.runners["spring"].paused
    assert await cli("campaign", "pause", "a/b", "--config", config) == 2
    assert capsys.readouterr().err.endswith("'a/b' is not a campaign name (letters, digits, - and _)\n")
    assert await cli("campaign", "pause", "autumn", "--config", config) == 2
    assert capsys.readouterr().err == "dialer: autumn: no campaign named 'autumn'\n"


def test_no_daemon_or_no_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["http"]["port"] = 1  # nothing listens there
    config.write_text(yaml.safe_dump(data))
    assert main(["status", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("dialer: no dialer daemon answers at http://127.0.0.1:1")
    del data["http"]
    config.write_text(yaml.safe_dump(data))
    assert main(["campaign", "stop", "x", "--config", str(config)]) == 2
    assert "no http section" in capsys.readouterr().err
