"""The drop directory as a careless operator uses it: names swapped, files renamed over others.

Found by attacking the issue-11 hardening: every file's campaign must end up dialing
exactly when its file says so, whatever order the watcher happens to read them in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ops_fixtures import campaign_yaml, close_daemon, open_daemon, write_config

from dialer.daemon.campaign_watcher import RunState
from dialer.daemon.server import Daemon


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    (tmp_path / "campaigns" / "a.yaml").write_text(campaign_yaml("alpha"))
    (tmp_path / "campaigns" / "b.yaml").write_text(campaign_yaml("beta"))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


async def test_two_files_that_swap_their_campaign_names_keep_both_dialing(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    campaigns = daemon.config.campaign_dir
    # a.yaml now holds beta, b.yaml alpha (an operator renaming files by their content).
    (campaigns / "a.yaml").write_text(campaign_yaml("beta", max_lines=3))
    (campaigns / "b.yaml").write_text(campaign_yaml("alpha", max_lines=4))
    await daemon.watcher.reload()
    assert daemon.watcher.issue_lines() == []
    assert daemon.controls.state("alpha") is RunState.running
    assert daemon.controls.state("beta") is RunState.running
    assert not daemon.runners["alpha"].paused and not daemon.runners["beta"].paused
    assert daemon.runners["alpha"].campaign.dialing.max_lines == 4
    assert daemon.runners["beta"].campaign.dialing.max_lines == 3
    assert daemon.controls.file("alpha") == campaigns / "b.yaml"
    assert daemon.controls.file("beta") == campaigns / "a.yaml"


async def test_a_campaign_renamed_into_a_later_file_is_not_left_removed(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    campaigns = daemon.config.campaign_dir
    # alpha moves from a.yaml into c.yaml unchanged; a.yaml becomes gamma.
    (campaigns / "c.yaml").write_text(campaign_yaml("alpha"))
    (campaigns / "a.yaml").write_text(campaign_yaml("gamma"))
    await daemon.watcher.reload()
    assert daemon.watcher.issue_lines() == []
    for name in ("alpha", "beta", "gamma"):
        assert daemon.controls.state(name) is RunState.running, name
        assert not daemon.runners[name].paused, name
    assert daemon.controls.file("alpha") == campaigns / "c.yaml"
    # Now the file that holds alpha goes: alpha is removed, nothing else.
    (campaigns / "c.yaml").unlink()
    await daemon.watcher.reload()
    assert daemon.controls.state("alpha") is RunState.removed
    assert daemon.runners["alpha"].paused
    assert daemon.controls.state("gamma") is RunState.running


async def test_a_sighup_while_another_process_holds_the_database_does_not_end_the_daemon(
    daemon: Daemon, tmp_path: Path
) -> None:
    """`dialer leads import` or a backup holding SQLite's write lock past the busy timeout
    while ops send SIGHUP after an agent change: the reload fails, the daemon dials on."""
    import asyncio
    import sqlite3
    import time

    import yaml

    assert daemon.config_path is not None
    data = yaml.safe_load(daemon.config_path.read_text())
    data["agents"].append({"id": "agent3", "interface": "PJSIP/agent3", "queues": ["sales"]})
    data["tick_interval"] = 0.05
    daemon.config_path.write_text(yaml.safe_dump(data))
    (daemon.config.campaign_dir / "c.yaml").write_text(campaign_yaml("gamma"))
    holder = sqlite3.connect(tmp_path / "dialer.db", isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    main = asyncio.create_task(daemon.main_loop())
    try:
        daemon.handle_reload()
        deadline = time.monotonic() + 8  # the store's busy timeout is 5 s
        while time.monotonic() < deadline and not main.done():
            await asyncio.sleep(0.1)
        assert not main.done(), f"the main loop ended: {main.exception()!r}"
        holder.execute("ROLLBACK")
        # The campaign directory is still read at the next SIGHUP, and the agents applied.
        daemon.handle_reload()
        deadline = time.monotonic() + 8
        while not ("gamma" in daemon.runners and "agent3" in {a.id for a in daemon.config.agents}):
            assert time.monotonic() < deadline and not main.done()
            await asyncio.sleep(0.05)
    finally:
        holder.close()
        daemon.should_exit = True
        daemon._wake.set()
        await asyncio.wait_for(asyncio.gather(main, return_exceptions=True), 15)


async def test_an_agent_taking_a_call_while_the_database_is_locked_still_bridges_the_call(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's state is written to the store before the call learns of its agent: a
    locked database (past the busy timeout) lost the bridge, and the answered call would
    end as abandoned, counted in the abandon rate."""
    import asyncio
    import sqlite3

    from dialer.core import records as r

    runner = daemon.runners["alpha"]
    seen: list[object] = []

    async def spy(record: r.CallRecord, *_writes: object) -> None:
        seen.append(record)

    monkeypatch.setattr(runner, "owns", lambda key: key == "attempt-1")
    monkeypatch.setattr(runner, "on_record", spy)
    events: asyncio.Queue[tuple[dict[str, str], float]] = asyncio.Queue()
    daemon.ami.events = events  # type: ignore[union-attr]
    holder = sqlite3.connect(tmp_path / "dialer.db", isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")  # held past the store's 5 s busy timeout
    consumer = asyncio.create_task(daemon._consume_events())
    try:
        events.put_nowait(
            ({"Event": "AgentConnect", "Uniqueid": "attempt-1", "Queue": "sales", "Interface": "PJSIP/agent1"}, 1.0)
        )
        for _ in range(300):
            if seen or consumer.done():
                break
            await asyncio.sleep(0.05)
        assert not consumer.done(), repr(consumer.exception())
        assert [type(x) for x in seen] == [r.AgentConnected]
    finally:
        holder.close()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def test_an_event_whose_handling_fails_does_not_deafen_the_daemon(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure was logged with `event=` as a field, which structlog takes as its own
    first argument: the TypeError ended the event consumer and the daemon heard no
    further AMI event (no hangup, no bridge) until restarted."""
    import asyncio

    from dialer.core import records as r

    runner = daemon.runners["alpha"]
    seen: list[object] = []

    async def failing_once(record: r.CallRecord, *_writes: object) -> None:
        seen.append(record)
        if len(seen) == 1:
            raise RuntimeError("a defect in one event's handling")

    monkeypatch.setattr(runner, "owns", lambda key: key.startswith("attempt-"))
    monkeypatch.setattr(runner, "on_record", failing_once)
    events: asyncio.Queue[tuple[dict[str, str], float]] = asyncio.Queue()
    daemon.ami.events = events  # type: ignore[union-attr]
    consumer = asyncio.create_task(daemon._consume_events())
    try:
        for n in (1, 2):
            events.put_nowait(({"Event": "Newchannel", "Uniqueid": f"attempt-{n}", "Channel": "PJSIP/x-1"}, 1.0))
        for _ in range(100):
            if len(seen) == 2 or consumer.done():
                break
            await asyncio.sleep(0.02)
        assert not consumer.done(), repr(consumer.exception())
        assert len(seen) == 2
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def test_a_database_error_during_the_drain_does_not_abandon_the_stop(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the database is locked (an import past the busy timeout): a tick that
    fails during the drain is tried again, and one campaign whose calls cannot be closed
    does not keep the others from closing theirs nor the agents from leaving their queues."""
    from dialer.daemon.campaign_runner import CampaignRunner
    from dialer.store.store import StoreError

    locked = StoreError("database write failed: database is locked")
    ticks: list[str] = []
    aborted: list[str] = []
    busy = {"alpha": True, "beta": True}
    monkeypatch.setattr(CampaignRunner, "busy", property(lambda self: busy[self.campaign.name]))

    async def tick(self: CampaignRunner, now: float) -> None:
        ticks.append(self.campaign.name)
        if ticks.count(self.campaign.name) <= 2:
            raise locked  # the lock is held for the first two turns
        busy[self.campaign.name] = False

    async def abort_live(self: CampaignRunner, now: float) -> int:
        aborted.append(self.campaign.name)
        if self.campaign.name == "alpha":
            raise locked
        return 0

    monkeypatch.setattr(CampaignRunner, "tick", tick)
    monkeypatch.setattr(CampaignRunner, "abort_live", abort_live)
    async def close() -> None:
        pass

    monkeypatch.setattr(daemon.ami, "close", close, raising=False)
    daemon.drain_timeout = 10
    await daemon.shutdown()
    assert ticks.count("alpha") == 3 and ticks.count("beta") == 3
    assert aborted == ["alpha", "beta"]
    removed = [a for a in daemon.ami.sent if a["Action"] == "QueueRemove"]  # type: ignore[union-attr]
    assert {(a["Queue"], a["Interface"]) for a in removed} == {
        ("sales", "PJSIP/agent1"), ("sales", "PJSIP/agent2"), ("vip", "PJSIP/agent2")
    }
