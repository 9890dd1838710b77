"""The task supervisor on its own, on a hand-driven clock: backoff, normal ends, failing and healing."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from dialer.daemon.task_supervisor import TaskSupervisor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_task_that_dies_is_restarted_after_a_doubling_backoff_until_it_is_failing() -> None:
    clock = Clock()
    runs = []

    async def dies() -> None:
        runs.append(clock.now)
        raise RuntimeError("boom")

    supervisor = TaskSupervisor(clock=clock, first_delay=1.0, max_delay=4.0, give_up_after=4, stable_after=60.0)
    supervisor.start("events", dies)
    delays = []
    with capture_logs() as logs:
        for _ in range(4):
            await settle()
            supervisor.check()
            wait = supervisor.seconds_to_next_restart()
            assert wait is not None
            delays.append(wait)
            clock.now += wait
            supervisor.check()  # restarts it
        await settle()
    assert delays == [1.0, 2.0, 4.0, 4.0]  # doubling, capped
    assert runs == [100.0, 101.0, 103.0, 107.0, 111.0]
    assert [e["deaths"] for e in logs if e["event"] == "daemon.task_died"] == [1, 2, 3, 4]
    assert all(e["error"] == "RuntimeError('boom')" for e in logs if e["event"] == "daemon.task_died")
    assert [e["task"] for e in logs if e["event"] == "daemon.task_failing"] == ["events"]
    assert supervisor.failing == ["events"]
    await supervisor.cancel_all()


async def test_a_run_that_lasts_clears_the_failure_and_starts_the_count_again() -> None:
    clock = Clock()
    release = asyncio.Event()
    dying = [True, True, False]

    async def flaky() -> None:
        if dying.pop(0):
            raise RuntimeError("boom")
        await release.wait()

    supervisor = TaskSupervisor(clock=clock, first_delay=1.0, give_up_after=2, stable_after=10.0)
    supervisor.start("ami", flaky)
    for _ in range(2):
        await settle()
        supervisor.check()
        clock.now += supervisor.seconds_to_next_restart() or 0.0
        supervisor.check()
    assert supervisor.failing == ["ami"]  # two deaths, and the third run is young
    await settle()
    clock.now += 10.0
    supervisor.check()
    assert supervisor.failing == []  # ten seconds up: whole again
    release.set()  # it ends on its own now: a death like any other, counted afresh
    await settle()
    supervisor.check()
    assert supervisor.seconds_to_next_restart() == 1.0
    await supervisor.cancel_all()


async def test_a_task_ending_once_its_stop_is_set_is_not_restarted() -> None:
    clock = Clock()
    stop = asyncio.Event()
    woke = asyncio.Event()

    async def watcher() -> None:
        await stop.wait()

    supervisor = TaskSupervisor(on_done=woke.set, clock=clock)
    supervisor.start("campaign-watcher", watcher, stop)
    stop.set()
    await asyncio.wait_for(woke.wait(), 1)  # its end wakes the main loop
    with capture_logs() as logs:
        supervisor.check()
    assert logs == [] and supervisor.seconds_to_next_restart() is None and supervisor.failing == []
    await supervisor.cancel_all()
