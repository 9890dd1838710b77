"""Limits on the API's connections: how many, and how long a request may take to arrive.

The API runs in the daemon's own process, so its sockets share one file-descriptor
limit (1024 under systemd by default) with the AMI link, the FastAGI calls and the
database. uvicorn keeps a connection that never completes a request open for ever
(its keep-alive timeout only starts after a response): a few hundred idle or
slowly written connections took every descriptor, and then `/healthz`, a new
FastAGI call or an AMI reconnect failed with "Too many open files".

So a connection beyond `MAX_CONNECTIONS` is closed as soon as it is accepted,
and one whose request (headers and body) has not arrived whole `READ_TIMEOUT_S`
after its first byte (or after the connection opened) is closed. Idle keep-alive
connections stay uvicorn's business (closed after its `timeout_keep_alive`).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("dialer.http")

# Far more than ops tools and dashboards open, far fewer than the daemon's descriptors.
MAX_CONNECTIONS = 200
# A request from a real client arrives in milliseconds; 10 s allows a slow link.
READ_TIMEOUT_S = 10.0
# At most one warning per this many seconds each, however many connections are refused.
_WARN_EVERY_S = 10.0
_last_warning: dict[str, float] = {}


def _warn(event: str, **fields: object) -> None:
    now = time.monotonic()
    if now - _last_warning.get(event, -_WARN_EVERY_S) >= _WARN_EVERY_S:
        _last_warning[event] = now
        log.warning(event, **fields)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a deadline for each request to arrive."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            _warn("http.connection_refused", reason=f"more than {MAX_CONNECTIONS} connections open")
            transport.abort()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:
            self._arm()
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            self._disarm()  # the request is in: the app's turn

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(READ_TIMEOUT_S, self._read_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _read_too_slow(self) -> None:
        self._deadline = None
        if self.transport.get_protocol() is not self:
            return  # upgraded (a WebSocket): no longer an HTTP request being read
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.more_body:
            return  # read whole; the app is answering
        if cycle is not None and cycle.response_complete and not self.conn.trailing_data[0]:
            return  # idle between requests: uvicorn's keep-alive timeout closes it
        _warn("http.slow_request_closed", reason=f"no whole request within {READ_TIMEOUT_S:g} s")
        self.transport.abort()
