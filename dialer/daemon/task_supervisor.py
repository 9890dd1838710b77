"""The daemon's long-lived tasks (AMI reader, event consumer, watcher, webhooks), kept alive.

A task that ends or dies while it was meant to run on is logged and started
again after a backoff (doubling, capped). The supervisor never sleeps itself:
the daemon's main loop calls `check()` on every turn and sleeps no longer than
`seconds_to_next_restart()`, so every wait stays interruptible by shutdown.

A task that keeps dying (`give_up_after` deaths, none of its runs lasting
`stable_after` seconds) is reported as `failing`: the daemon then stops
feeding the systemd watchdog, for a deaf daemon that still looks alive is the
worst outcome. Restarts go on meanwhile; one that lasts clears the failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("dialer.daemon")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class _Supervised:
    name: str
    factory: TaskFactory
    stopping: asyncio.Event | None
    task: asyncio.Task[None]
    started_at: float
    deaths: int = 0
    """Deaths in a row; a run that lasts `stable_after` seconds starts the count again."""
    restart_at: float | None = None


class TaskSupervisor:
    def __init__(
        self,
        *,
        on_done: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        give_up_after: int = 5,
        stable_after: float = 60.0,
    ) -> None:
        self._on_done = on_done
        self._clock = clock
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.give_up_after = give_up_after
        self.stable_after = stable_after
        self._tasks: dict[str, _Supervised] = {}

    def start(self, name: str, factory: TaskFactory, stopping: asyncio.Event | None = None) -> None:
        """Run `factory()` as task `name`; its ending once `stopping` is set is normal, not a death."""
        self._tasks[name] = _Supervised(name, factory, stopping, self._spawn(name, factory), self._clock())

    def _spawn(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        task = asyncio.create_task(factory(), name=name)
        # Wakes the main loop, so a death is seen at once rather than at the next tick.
        task.add_done_callback(lambda _task: self._on_done())
        return task

    def check(self) -> None:
        """Log what died since the last call and restart what is due."""
        now = self._clock()
        for entry in self._tasks.values():
            if entry.restart_at is None and entry.task.done():
                if entry.stopping is not None and entry.stopping.is_set():
                    continue
                self._died(entry, now)
            if entry.restart_at is not None and now >= entry.restart_at:
                entry.restart_at = None
                entry.started_at = now
                entry.task = self._spawn(entry.name, entry.factory)
                log.warning("daemon.task_restarted", task=entry.name, deaths=entry.deaths)

    def _died(self, entry: _Supervised, now: float) -> None:
        if now - entry.started_at >= self.stable_after:
            entry.deaths = 0
        entry.deaths += 1
        delay = min(self.max_delay, self.first_delay * 2 ** (entry.deaths - 1))
        entry.restart_at = now + delay
        error = None if entry.task.cancelled() else entry.task.exception()
        log.error(
            "daemon.task_died" if error is not None or entry.task.cancelled() else "daemon.task_ended",
            task=entry.name,
            error=repr(error) if error is not None else None,
            deaths=entry.deaths,
            restart_in=round(delay, 2),
            exc_info=error,
        )
        if entry.deaths == self.give_up_after:
            log.critical("daemon.task_failing", task=entry.name, deaths=entry.deaths, action="watchdog stopped")

    @property
    def failing(self) -> list[str]:
        """Tasks that keep dying: the daemon cannot do its work and should be restarted whole."""
        now = self._clock()
        return sorted(
            e.name
            for e in self._tasks.values()
            if e.deaths >= self.give_up_after
            and (e.restart_at is not None or e.task.done() or now - e.started_at < self.stable_after)
        )

    def seconds_to_next_restart(self) -> float | None:
        due = [e.restart_at for e in self._tasks.values() if e.restart_at is not None]
        return max(0.0, min(due) - self._clock()) if due else None

    def tasks(self) -> list[asyncio.Task[None]]:
        return [e.task for e in self._tasks.values()]

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them; a failure other than the cancel is logged."""
        entries = list(self._tasks.values())
        self._tasks.clear()
        for entry in entries:
            entry.task.cancel()
        results = await asyncio.gather(*(e.task for e in entries), return_exceptions=True)
        for entry, result in zip(entries, results):
            if isinstance(result, Exception):
                log.error("daemon.task_failed", task=entry.name, error=repr(result))
