"""The main loop supervises its tasks: a dead event consumer is restarted, and one that keeps
dying stops the systemd watchdog (or, outside systemd, the daemon) instead of leaving it deaf.

The daemon runs in-process against the small fake AMI of `daemon_process`; the event
consumer is killed by an event that makes the record mapping raise.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
import yaml

import dialer.daemon.server as server
from daemon_process import SECRET, FakeAmi, free_port
from dialer.config.loader import load_config
from dialer.daemon.server import Daemon
from dialer.daemon.systemd import Notifier

POISON = "DialerTestPoison"


def write_config(tmp: Path, ami_port: int) -> Path:
    (tmp / "campaigns").mkdir()
    path = tmp / "dialer.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "ami": [{"host": "127.0.0.1", "port": ami_port, "username": "dialer", "secret": SECRET,
                         "connect_timeout": 1, "action_timeout": 2}],
                "database": {"url": "sqlite+aiosqlite:///dialer.db"},
                "campaign_dir": "campaigns",
                "tick_interval": 0.1,
                "agents": [{"id": "agent1", "interface": "PJSIP/agent1", "queues": ["sales"]}],
            }
        )
    )
    return path


@pytest.fixture
async def ami(tmp_path: Path) -> AsyncIterator[FakeAmi]:
    fake = FakeAmi(free_port())
    await fake.start()
    yield fake
    await fake.close()


def poison_mapping(monkeypatch: pytest.MonkeyPatch, *, times: int | None) -> list[int]:
    """Make the record mapping raise for the poison event (`times` times, or always); returns the count."""
    raised = [0]
    real = server.to_record

    def to_record(event: Mapping[str, str], at: float) -> object:
        if event.get("Event") == POISON and (times is None or raised[0] < times):
            raised[0] += 1
            raise RuntimeError("a mapping bug")
        return real(event, at)

    monkeypatch.setattr(server, "to_record", to_record)
    return raised


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened in {timeout} s: {what}")
        await asyncio.sleep(0.02)


def member_status(queue: str = "sales") -> dict[str, str]:
    return {"Event": "QueueMemberStatus", "Queue": queue, "Interface": "PJSIP/agent1", "Status": "1", "Paused": "0"}


async def started(daemon: Daemon) -> asyncio.Task[int]:
    task = asyncio.create_task(daemon.serve())
    await until(lambda: daemon.ami is not None and daemon.ami.connected.is_set() or task.done(), 10, "AMI login")
    assert not task.done(), task.result()
    return task


@pytest.mark.timeout(30)
async def test_a_dead_event_consumer_is_restarted_and_events_reach_the_daemon_again(
    tmp_path: Path, ami: FakeAmi, monkeypatch: pytest.MonkeyPatch
) -> None:
    raised = poison_mapping(monkeypatch, times=1)
    daemon = Daemon(load_config(write_config(tmp_path, ami.port)), {}, notifier=Notifier({}))
    task = await started(daemon)
    try:
        assert daemon.ami is not None
        daemon.ami.events.put_nowait(({"Event": POISON}, time.time()))
        await until(lambda: raised[0] == 1, 5, "the poison event read")
        # Sent after the consumer died: only a restarted consumer can apply it.
        daemon.ami.events.put_nowait((member_status(), time.time()))
        agent = daemon.board.agent("PJSIP/agent1")
        assert agent is not None
        await until(lambda: agent.queues == {"sales"}, 10, "the agent's QueueMemberStatus applied")
    finally:
        daemon.handle_exit()
        assert await asyncio.wait_for(task, 15) == 0


def datagrams(sock: socket.socket) -> list[dict[str, str]]:
    found = []
    while True:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return found
        found.append(dict(line.split("=", 1) for line in data.decode().splitlines()))


@pytest.mark.timeout(30)
async def test_a_consumer_that_keeps_dying_stops_the_watchdog_until_it_runs_again(
    tmp_path: Path, ami: FakeAmi, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    poison_mapping(monkeypatch, times=None)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    request.addfinalizer(notify.close)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"})
    daemon = Daemon(load_config(write_config(tmp_path, ami.port)), {}, notifier=notifier)
    daemon.tasks.first_delay = 0.02
    daemon.tasks.give_up_after = 3
    daemon.tasks.max_delay = 0.1
    daemon.tasks.stable_after = 1.0
    task = await started(daemon)
    try:
        assert daemon.ami is not None
        await until(lambda: any(d.get("WATCHDOG") == "1" for d in datagrams(notify)), 5, "watchdog fed while healthy")
        stop_poison = asyncio.Event()

        async def poison() -> None:
            while not stop_poison.is_set():
                daemon.ami.events.put_nowait(({"Event": POISON}, time.time()))  # type: ignore[union-attr]
                await asyncio.sleep(0.01)

        feeder = asyncio.create_task(poison())
        try:
            await until(lambda: daemon.tasks.failing == ["events"], 10, "the events task reported failing")
            seen: list[dict[str, str]] = []
            await until(
                lambda: seen.extend(datagrams(notify)) or any(
                    d.get("STATUS", "").startswith("FAILED: task(s) events keep dying") for d in seen
                ),
                5,
                "STATUS= saying the events task keeps dying",
            )
            # Four watchdog intervals and more while it keeps dying: not one ping.
            datagrams(notify)
            await asyncio.sleep(0.3)
            assert not [d for d in datagrams(notify) if "WATCHDOG" in d]
            assert not task.done()  # systemd's watchdog does the restart, not an exit
        finally:
            stop_poison.set()
            await feeder
            while not daemon.ami.events.empty():  # the poison still queued
                daemon.ami.events.get_nowait()
        # Once the consumer has run a while again the daemon is whole: pings resume.
        await until(lambda: daemon.tasks.failing == [], 10, "the failure cleared after a stable run")
        await until(lambda: any(d.get("WATCHDOG") == "1" for d in datagrams(notify)), 5, "watchdog fed again")
        daemon.ami.events.put_nowait((member_status(), time.time()))
        agent = daemon.board.agent("PJSIP/agent1")
        assert agent is not None
        await until(lambda: agent.queues == {"sales"}, 5, "events applied again")
    finally:
        daemon.handle_exit()
        assert await asyncio.wait_for(task, 15) == 0


@pytest.mark.timeout(30)
async def test_outside_systemd_a_daemon_whose_consumer_keeps_dying_stops_with_status_1(
    tmp_path: Path, ami: FakeAmi, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_mapping(monkeypatch, times=None)
    daemon = Daemon(load_config(write_config(tmp_path, ami.port)), {}, notifier=Notifier({}), drain_timeout=1)
    daemon.tasks.first_delay = 0.02
    daemon.tasks.give_up_after = 3
    task = await started(daemon)
    assert daemon.ami is not None
    for _ in range(20):
        daemon.ami.events.put_nowait(({"Event": POISON}, time.time()))
    assert await asyncio.wait_for(task, 15) == 1
