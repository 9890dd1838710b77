"""An asyncio loop whose clock is virtual: where it would wait, time jumps instead.

Everything runs on the loop's one thread (run_in_executor and to_thread run the
function inline), so the order of every step follows from the seed alone.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from typing import Any


class WouldBlockForever(RuntimeError):
    """Nothing is scheduled and nothing can arrive: the simulated system is stuck."""


class _VirtualSelector(selectors.BaseSelector):
    """The real selector, asked never to wait; a wait becomes a jump of the clock."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self._real = selectors.DefaultSelector()
        self._advance = advance

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready:
            return ready
        if timeout is None:
            raise WouldBlockForever(
                "the simulated daemon waits for nothing that can ever happen (no timer, no ready file)"
            )
        if timeout > 0:
            self._advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`time()` starts at 0 and moves only when the loop would otherwise sleep."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_VirtualSelector(self._advance))

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def time(self) -> float:
        return self._virtual_now

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        # A thread would race the virtual clock; the function runs now, on this thread.
        future = self.create_future()
        try:
            future.set_result(func(*args))
        except BaseException as exc:  # handed to the awaiting coroutine, as an executor would
            future.set_exception(exc)
        return future
