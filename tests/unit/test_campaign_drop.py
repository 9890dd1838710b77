"""The campaign drop directory under the load and the files ops teams and attackers put there.

Issue 11, items 3, 4 and 6: many files at once, a slow writer, files that would block or
swamp the event loop, and symbolic links leading out of the directory.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from ops_fixtures import TOKEN, campaign_yaml, close_daemon, open_daemon, write_config

from dialer.daemon import campaign_watcher
from dialer.daemon.campaign_watcher import RunState
from dialer.daemon.server import Daemon
from dialer.http.app import build_app

# A line of /etc/shadow reads as a YAML key (its last ':' ends the line): issue 11, item 6.
SHADOW = "root:$y$j9T$SECRETHASHvalue0123456789$abcdefghijklmnopqrstuv:19700:0:99999:7:::\n"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    for name in ("first", "second"):
        (tmp_path / "campaigns" / f"{name}.yaml").write_text(campaign_yaml(name))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


def folder(daemon: Daemon) -> Path:
    return daemon.config.campaign_dir


async def _slow_write(path: Path, text: str, pieces: int, pause: float) -> None:
    step = -(-len(text) // pieces)
    with open(path, "w") as file:
        for start in range(0, len(text), step):
            file.write(text[start : start + step])
            file.flush()
            await asyncio.sleep(pause)


async def test_fifty_files_at_once_and_a_slow_writer_leave_the_daemon_running(
    daemon: Daemon, tmp_path: Path
) -> None:
    assert daemon.watcher is not None
    # A fast loop: the more turns over the runners, the more chances to meet a new one.
    daemon.config = daemon.config.model_copy(update={"tick_interval": 0.02})
    stop = asyncio.Event()
    main = asyncio.create_task(daemon.main_loop(), name="main-loop")
    watch = asyncio.create_task(daemon.watcher.run(stop), name="watcher")
    staging = tmp_path / "staging"
    staging.mkdir()
    names = [f"bulk{i:02d}" for i in range(50)]
    for name in names:
        (staging / f"{name}.yaml").write_text(campaign_yaml(name, max_lines=3))
    # The slow file is not a campaign until its last piece is written (no name before that).
    slow_text = campaign_yaml("slow", max_lines=7).replace("name: slow\n", "") + "name: slow\n"
    try:
        await asyncio.sleep(0.3)  # the watch is set up
        writer = asyncio.create_task(_slow_write(folder(daemon) / "slow.yaml", slow_text, pieces=12, pause=0.25))
        await asyncio.sleep(0.3)
        for name in names:  # `mv staging/*.yaml campaigns/`
            os.rename(staging / f"{name}.yaml", folder(daemon) / f"{name}.yaml")
        deadline = time.monotonic() + 60
        while not (set(names) | {"slow"}) <= set(daemon.runners) or not writer.done():
            if main.done():
                main.result()  # raises what killed the main loop
                pytest.fail("the main loop ended by itself")
            assert not watch.done(), "the watcher ended"
            assert time.monotonic() < deadline, f"started {len(daemon.runners)} of 53 campaigns in 60 s"
            await asyncio.sleep(0.05)
        await writer
        while daemon.runners["slow"].campaign.dialing.max_lines != 7 or daemon.watcher.issue_lines():
            assert time.monotonic() < deadline, daemon.watcher.issue_lines()
            await asyncio.sleep(0.05)
        assert not main.done()
        assert all(daemon.controls.state(name) is RunState.running for name in names)
        assert all(not daemon.runners[name].paused for name in names)
        assert len((await daemon.status()).campaigns) == 53
    finally:
        stop.set()
        daemon.should_exit = True
        daemon._wake.set()
        await asyncio.wait_for(asyncio.gather(main, watch, return_exceptions=True), 10)
    main.result()


async def test_a_file_still_being_written_is_read_once_it_settles(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    settle = campaign_watcher.SETTLE_S
    path = folder(daemon) / "fresh.yaml"
    # A prefix that is a valid campaign by itself: read now, it would start with 5 lines.
    path.write_text(campaign_yaml("fresh", max_lines=5))
    assert await daemon.watcher.reload(settle=settle) is True
    assert "fresh" not in daemon.runners and daemon.watcher.issue_lines() == []
    settled = time.time() - 2 * settle
    os.utime(path, (settled, settled))
    assert await daemon.watcher.reload(settle=settle) is False
    assert daemon.runners["fresh"].campaign.dialing.max_lines == 5
    # An edit in progress leaves the running version alone until it settles.
    path.write_text(campaign_yaml("fresh", max_lines=9))
    assert await daemon.watcher.reload(settle=settle) is True
    assert daemon.runners["fresh"].campaign.dialing.max_lines == 5
    # Same size, mtime set back to the value already read: the ctime still tells.
    os.utime(path, (settled, settled))
    await daemon.watcher.reload(settle=settle)
    assert daemon.runners["fresh"].campaign.dialing.max_lines == 9


async def test_files_are_parsed_off_the_event_loop_and_only_when_changed(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert daemon.watcher is not None
    loop_thread = threading.get_ident()
    parsed: list[tuple[str, int]] = []
    real = campaign_watcher.load_campaign

    def spy(path: Path, **kwargs: object) -> object:
        parsed.append((Path(path).name, threading.get_ident()))
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(campaign_watcher, "load_campaign", spy)
    (folder(daemon) / "third.yaml").write_text(campaign_yaml("third"))
    await daemon.watcher.reload()
    assert [name for name, _ in parsed] == ["third.yaml"]  # the others were read at start
    assert all(thread != loop_thread for _, thread in parsed)
    parsed.clear()
    await daemon.watcher.reload()
    assert parsed == []  # nothing changed: nothing read
    (folder(daemon) / "second.yaml").write_text(campaign_yaml("second", max_lines=2))
    await daemon.watcher.reload()
    assert [name for name, _ in parsed] == ["second.yaml"]
    assert daemon.runners["second"].campaign.dialing.max_lines == 2


async def test_hostile_files_in_the_directory_are_reported_or_skipped(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.watcher is not None
    campaigns = folder(daemon)
    os.mkfifo(campaigns / "pipe.yaml")  # a read would wait for a writer forever
    (campaigns / "to-pipe.yaml").symlink_to(campaigns / "pipe.yaml")
    (campaigns / "folder.yaml").mkdir()
    with open(campaigns / "huge.yaml", "wb") as huge:
        huge.truncate(10 * 1024 * 1024)  # sparse: refused by its size, never read
    bomb = ["name: bomb", "l0: &l0 [xx, xx, xx, xx]"]
    bomb += [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}]" for i in range(1, 11)]
    (campaigns / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    (campaigns / "deep.yaml").write_text("name: deep\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    (campaigns / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (campaigns / "dates.yaml").write_text("name: dates\nwhen: 2020-02-30\n")
    (campaigns / "dupes.yaml").write_text(campaign_yaml("dupes") + "queue: other\n")
    await asyncio.wait_for(daemon.watcher.reload(), 60)
    issues = {Path(line.split(":", 1)[0]).name: line for line in daemon.watcher.issue_lines()}
    assert "pipe.yaml" not in issues and "folder.yaml" not in issues
    assert "not a regular file" in issues["to-pipe.yaml"]
    assert "larger than 512 KiB" in issues["huge.yaml"]
    assert "expands to more than" in issues["bomb.yaml"]
    assert "nested more than" in issues["deep.yaml"]
    assert "UTF-8" in issues["latin1.yaml"]
    assert issues["dates.yaml"].endswith(":2: this value cannot be read as a date or time")
    assert "duplicate key 'queue'" in issues["dupes.yaml"]
    assert set(daemon.runners) == {"first", "second"}


async def test_a_link_out_of_the_directory_is_not_read_nor_echoed(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.watcher is not None
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    campaigns = folder(daemon)
    (campaigns / "shadow.yaml").symlink_to(shadow)
    (campaigns / "sub").mkdir()
    (campaigns / "sub" / "inside.yaml").write_text(campaign_yaml("inside"))
    (campaigns / "inside.yaml").symlink_to(campaigns / "sub" / "inside.yaml")  # stays inside: followed
    # The same lines in a file of the directory itself: read, but named by line only.
    (campaigns / "pasted.yaml").write_text(campaign_yaml("pasted") + SHADOW)
    await daemon.watcher.reload()
    lines = daemon.watcher.issue_lines()
    assert f"{campaigns / 'shadow.yaml'}: a symbolic link leading out of the directory; not read" in lines
    assert f"{campaigns / 'pasted.yaml'}:9: unknown key at line 9" in lines
    assert "inside" in daemon.runners
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as http:
        status = await http.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status.status_code == 200
    assert status.json()["config_issues"] == lines
    for text in [*lines, status.text]:
        assert "SECRETHASH" not in text and "19700" not in text


async def test_a_walk_over_the_runners_survives_runners_added_during_it(daemon: Daemon) -> None:
    seen = []
    for name, runner in daemon.runners.items():
        # What the main loop does: await inside the walk while the watcher adds a campaign.
        (folder(daemon) / f"added-{name}.yaml").write_text(campaign_yaml(f"added-{name}"))
        assert daemon.watcher is not None
        await daemon.watcher.reload()
        seen.append(runner.campaign.name)
    assert seen == ["first", "second"]  # the walk went on over the runners it began with
    assert set(daemon.runners) == {"first", "second", "added-first", "added-second"}
