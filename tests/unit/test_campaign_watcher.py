"""The campaign drop directory and the SIGHUP config reload, over a daemon with a fake AMI."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from ops_fixtures import campaign_yaml, close_daemon, open_daemon, write_config

from dialer.daemon.campaign_watcher import RunState, reload_config
from dialer.daemon.server import Daemon


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


def campaigns_dir(daemon: Daemon) -> Path:
    return daemon.config.campaign_dir


async def test_new_changed_broken_and_removed_files(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    folder = campaigns_dir(daemon)
    (folder / "spring.yaml").write_text(campaign_yaml("spring", max_lines=8))
    await daemon.watcher.reload()
    runner = daemon.runners["spring"]
    assert not runner.paused and runner.campaign.dialing.max_lines == 8

    (folder / "spring.yaml").write_text(campaign_yaml("spring", max_lines=3))
    await daemon.watcher.reload()
    assert daemon.runners["spring"] is runner  # the same runner: calls in progress stay with it
    assert runner.campaign.dialing.max_lines == 3

    broken = campaign_yaml("spring", max_lines=3).replace("max_lines: 3", "max_lines: lots")
    (folder / "spring.yaml").write_text(broken)
    await daemon.watcher.reload()
    line = broken.splitlines().index("  max_lines: lots") + 1
    [issue] = daemon.watcher.issue_lines()
    assert issue.startswith(f"{folder / 'spring.yaml'}:{line}: dialing.max_lines: Input should be a valid integer")
    assert runner.campaign.dialing.max_lines == 3 and not runner.paused  # the last good version runs on

    (folder / "spring.yaml").write_text(campaign_yaml("spring", max_lines=4))
    await daemon.watcher.reload()
    assert daemon.watcher.issue_lines() == []
    assert runner.campaign.dialing.max_lines == 4

    (folder / "spring.yaml").rename(folder / "spring-2026.yaml")  # moved, not removed
    await daemon.watcher.reload()
    assert daemon.controls.state("spring") is RunState.running
    assert daemon.controls.file("spring") == folder / "spring-2026.yaml"
    (folder / "spring-2026.yaml").rename(folder / "spring.yaml")
    await daemon.watcher.reload()

    (folder / "spring.yaml").unlink()
    await daemon.watcher.reload()
    assert daemon.controls.state("spring") is RunState.removed
    assert runner.paused
    assert "spring" in daemon.runners  # data and runner kept; the file coming back resumes it
    (folder / "spring.yaml").write_text(campaign_yaml("spring", max_lines=4))
    await daemon.watcher.reload()
    assert not runner.paused


async def test_editor_files_and_disabled_campaigns(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    folder = campaigns_dir(daemon)
    for temp in (".spring.yaml.swp", "spring.yaml~", "#spring.yaml#", ".#spring.yaml", "notes.txt"):
        (folder / temp).write_text("name: [broken")
    (folder / "autumn.yaml").write_text(campaign_yaml("autumn", enabled=False))
    await daemon.watcher.reload()
    assert daemon.watcher.issue_lines() == []
    assert daemon.runners == {}
    assert daemon.controls.state("autumn") is RunState.disabled
    (folder / "autumn.yaml").write_text(campaign_yaml("autumn", enabled=True))
    await daemon.watcher.reload()
    assert not daemon.runners["autumn"].paused
    (folder / "autumn.yaml").write_text(campaign_yaml("autumn", enabled=False))
    await daemon.watcher.reload()
    assert daemon.runners["autumn"].paused
    assert daemon.controls.state("autumn") is RunState.disabled


async def test_two_files_with_one_name_keep_the_first(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    folder = campaigns_dir(daemon)
    (folder / "a.yaml").write_text(campaign_yaml("spring", max_lines=2))
    (folder / "b.yaml").write_text(campaign_yaml("spring", max_lines=9))
    await daemon.watcher.reload()
    assert daemon.runners["spring"].campaign.dialing.max_lines == 2
    [issue] = daemon.watcher.issue_lines()
    assert issue == f"{folder / 'b.yaml'}: name: campaign 'spring' is also defined in {folder / 'a.yaml'}"


async def test_the_watcher_sees_a_dropped_file_quickly_and_waits_out_partial_writes(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.watcher.run(stop))
    try:
        await asyncio.sleep(0.3)  # the watch is set up
        folder = campaigns_dir(daemon)
        text = campaign_yaml("dropped", max_lines=7)
        started = time.monotonic()
        with open(folder / "dropped.yaml", "w") as file:
            # A slow writer: the first half alone is not a valid campaign.
            file.write(text[: len(text) // 2])
            file.flush()
            await asyncio.sleep(0.1)
            file.write(text[len(text) // 2 :])
        while "dropped" not in daemon.runners:
            assert time.monotonic() - started < 2.0, "the dropped file was not picked up within 2 s"
            await asyncio.sleep(0.05)
        assert daemon.runners["dropped"].campaign.dialing.max_lines == 7
        assert daemon.watcher.issue_lines() == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_sighup_reload_applies_agents_and_logging(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.ami is not None and daemon.config_path is not None
    previous_level = logging.getLogger().level
    data = yaml.safe_load(daemon.config_path.read_text())
    data["agents"] = [
        {"id": "agent1", "interface": "PJSIP/agent1", "queues": ["sales"]},
        {"id": "agent3", "interface": "PJSIP/agent3", "queues": ["sales"]},
    ]
    data["logging"]["level"] = "debug"
    data["drain_timeout"] = 12
    data["ami"][0]["port"] = 5039
    daemon.config_path.write_text(yaml.safe_dump(data))
    try:
        result = await reload_config(daemon, daemon.config_path)
        assert result.applied == ["logging.level", "agents", "drain_timeout"]
        assert result.need_restart == ["ami"]
        assert logging.getLogger().level == logging.DEBUG
    finally:
        logging.getLogger().setLevel(previous_level)
    assert sorted(a.id for a in daemon.board.agents()) == ["agent1", "agent3"]
    assert daemon.drain_timeout == 12
    assert daemon.config.ami[0].port == 5038  # still the connection in use
    sent = [(a["Action"], a["Queue"], a["Interface"]) for a in daemon.ami.sent]
    assert sent == [
        ("QueueRemove", "sales", "PJSIP/agent2"),
        ("QueueRemove", "vip", "PJSIP/agent2"),
        ("QueueAdd", "sales", "PJSIP/agent3"),
    ]

    daemon.config_path.write_text("ami: [{username: dialer}]\n")
    broken = await reload_config(daemon, daemon.config_path)
    assert broken.issues and broken.issues[0].startswith(f"{daemon.config_path}:1: ami.0")
    assert sorted(a.id for a in daemon.board.agents()) == ["agent1", "agent3"]  # unchanged
