"""aiosqlite without its thread, for the simulation only, with database faults.

aiosqlite runs every call on a thread of its own, which would make the order of
events depend on the machine's scheduler. Inside `inline_sqlite()` each call
runs at once on the loop's thread; `DatabaseFaults` makes calls slow (virtual
seconds) or fail as a locked database does after its busy timeout. The patch
is undone on leaving, so nothing outside a simulation run sees it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiosqlite

BUSY_TIMEOUT_S = 5.0
"""The store's `PRAGMA busy_timeout`: how long a locked database holds a call before it fails."""

_BUSY_STEP_S = 0.05
_STATEMENTS = frozenset({"execute", "executemany", "executescript", "_execute_insert", "_execute_fetchall"})


@dataclass
class DatabaseFaults:
    """Set by the fault schedule; read on every database call."""

    clock: Callable[[], float]
    slow_until: float = 0.0
    slow_seconds: float = 0.0
    locked_until: float = 0.0
    locked_calls: int = 0

    def slow(self, now: float, seconds: float, per_call: float) -> None:
        self.slow_until = now + seconds
        self.slow_seconds = per_call

    def lock(self, now: float, seconds: float) -> None:
        self.locked_until = now + seconds

    def heal(self) -> None:
        self.slow_until = self.locked_until = 0.0


_current: DatabaseFaults | None = None


async def _execute(self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if not self._running or not self._connection:
        raise ValueError("Connection closed")
    faults = _current
    if faults is not None and getattr(fn, "__name__", "") in _STATEMENTS:
        now = faults.clock()
        if now < faults.slow_until:
            await asyncio.sleep(faults.slow_seconds)
        if now < faults.locked_until:
            faults.locked_calls += 1
            await asyncio.sleep(BUSY_TIMEOUT_S)
            raise sqlite3.OperationalError("database is locked")
    if args and isinstance(args[0], str) and args[0].lstrip().upper().startswith("PRAGMA BUSY_TIMEOUT"):
        # A real busy wait would block the one thread the lock holder needs: wait in virtual time instead.
        args = ("PRAGMA busy_timeout=0", *args[1:])
    call = partial(fn, *args, **kwargs)
    waited = 0.0
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or waited >= BUSY_TIMEOUT_S:
                raise
        await asyncio.sleep(_BUSY_STEP_S)
        waited += _BUSY_STEP_S


async def _connect(self: aiosqlite.Connection) -> aiosqlite.Connection:
    if self._connection is None:
        self._connection = self._connector()
        # A daemon crash is a process's death, not the machine's: what was committed is in the OS's
        # cache either way, so the simulation skips the fsyncs that would dominate its run time.
        self._connection.execute("PRAGMA synchronous=OFF")
    return self


def _await(self: aiosqlite.Connection) -> Generator[Any, None, aiosqlite.Connection]:
    return _connect(self).__await__()


def _stop(self: aiosqlite.Connection) -> None:
    self._running = False
    if self._connection is not None:
        self._connection.close()
        self._connection = None


@contextmanager
def inline_sqlite(faults: DatabaseFaults | None = None) -> Iterator[None]:
    global _current
    names = ("_execute", "__await__", "stop")
    saved = {name: aiosqlite.Connection.__dict__[name] for name in names}
    previous = _current
    aiosqlite.Connection._execute = _execute  # type: ignore[method-assign]
    aiosqlite.Connection.__await__ = _await  # type: ignore[method-assign]
    aiosqlite.Connection.stop = _stop  # type: ignore[method-assign,assignment]
    _current = faults
    try:
        yield
    finally:
        _current = previous
        for name, value in saved.items():
            setattr(aiosqlite.Connection, name, value)
