"""Each AMI server's state for /status, /readyz and the metrics: up, shutting down or down, and
since when.

A server's connection says only whether it is logged in now; the moment it changed is noted
here, by looking at each tick of the main loop and at each read, so "since" is right to a tick
without a hook in every PBX implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from dialer.config.models import AmiServer
from dialer.control.daemon_view import AmiServerStatus
from dialer.pbx.protocol import Pbx


class ServerWatch:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[str, float]] = {}
        """Server name -> (its state when last looked at, since when)."""

    def look(
        self,
        servers: Mapping[str, Pbx],
        configs: Iterable[AmiServer],
        *,
        shutting_down: Collection[str] = (),
        calls: Mapping[str, int] | None = None,
    ) -> list[AmiServerStatus]:
        now = self._clock()
        seen: list[AmiServerStatus] = []
        for config in configs:
            pbx = servers.get(config.name)
            if pbx is None:
                continue  # not built yet (before the start)
            if not pbx.connected.is_set():
                state = "down"
            elif config.name in shutting_down:
                state = "shutting_down"
            else:
                state = "up"
            before = self._seen.get(config.name)
            if before is None or before[0] != state:
                self._seen[config.name] = before = (state, now)
            seen.append(AmiServerStatus(
                name=config.name,
                state=state,
                since=before[1],
                calls=(calls or {}).get(config.name, 0),
                max_lines=config.max_lines,
                last_error=pbx.last_error,
            ))
        return seen
