"""A TCP proxy between the daemon and Asterisk's AMI port that a test can break.

`cut()` closes both sides of every connection (with a reset towards the
daemon), as a dropped link or a firewall would; `half_open()` stops forwarding
in both directions and keeps the sockets open, so only the daemon's own ping
watchdog can notice. New connections after either are forwarded normally,
unless `block()` made AMI unreachable for a while (connections closed at once).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    frozen: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self, reset: bool = False) -> None:
        for writer in (self.client, self.upstream):
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
            writer.close()


class AmiProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[_Pair] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.connections = 0
        self._blocked_until = 0.0
        self.cuts = 0
        self.freezes = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self) -> int:
        """Close every connection now; returns how many there were."""
        pairs = list(self._pairs)
        for pair in pairs:
            pair.close(reset=True)
        self.cuts += 1
        return len(pairs)

    def block(self, seconds: float) -> None:
        """AMI unreachable for `seconds`: open connections are cut, new ones closed at once."""
        self._blocked_until = time.monotonic() + seconds
        self.cut()

    def half_open(self) -> int:
        """Stop forwarding on every open connection without closing it."""
        pairs = [p for p in self._pairs if not p.frozen]
        for pair in pairs:
            pair.frozen = True
        self.freezes += 1
        return len(pairs)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if time.monotonic() < self._blocked_until:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 3.0)
        except (OSError, asyncio.TimeoutError):
            writer.close()  # Asterisk is down: the daemon sees its connect fail
            return
        self.connections += 1
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, pair)),
            asyncio.create_task(self._pump(up_reader, writer, pair)),
        ]
        try:
            await asyncio.gather(*pair.tasks, return_exceptions=True)
        finally:
            self._pairs.discard(pair)
            pair.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair) -> None:
        try:
            while data := await reader.read(65536):
                if pair.frozen:
                    continue  # swallowed: the peer waits for bytes that never come
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # Either side gone: a frozen pair only ends when the daemon gives up on it.
            for task in pair.tasks:
                if task is not asyncio.current_task():
                    task.cancel()
