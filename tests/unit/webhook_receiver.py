"""A small HTTP server on 127.0.0.1 playing a webhook receiver, well-behaved or hostile.

It records every request it reads in full (headers, body, the time) whatever it then
answers, so a test sees the redeliveries a sender makes, not only the accepted ones.
Modes: ok (204), status (any code), black_hole (reads the request, never answers),
drip (sends a status line byte by byte, slower than any timeout), redirect (302 to
another host), huge (200 announcing 5 GB and streaming it as long as it is read).
`stop()` closes the port (connection refused) until `start()` again.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from dialer.core.webhook_delivery import EVENT_ID_HEADER, SIGNATURE_HEADER, verify

HUGE = 5 * 1024**3


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event_id(self) -> str:
        return self.headers[EVENT_ID_HEADER.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: bytes) -> bool:
        return verify(secret, self.body, self.headers.get(SIGNATURE_HEADER.lower(), ""), now=time.time())


@dataclass
class Receiver:
    port: int
    mode: str = "ok"
    status: int = 204
    redirect_to: str = "http://127.0.0.2:9/elsewhere"
    received: list[Received] = field(default_factory=list)
    answered_ok: list[str] = field(default_factory=list)
    """Event ids of the requests this receiver answered with a 2xx: what it processed."""
    huge_bytes_sent: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/dispositions"

    async def start(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ": " in line:
                        name, value = line.split(": ", 1)
                        headers[name.lower()] = value
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(Received(headers, body, time.monotonic()))
                if not await self._answer(writer, headers):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> bool:
        """Answer one request; False to drop the connection."""
        if self.mode == "black_hole":
            await self._release.wait()  # until the server stops; the sender may give up before
            return False
        if self.mode == "drip":
            for byte in b"HTTP/1.1 200 OK\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1.0)
        if self.mode == "redirect":
            writer.write(
                f"HTTP/1.1 302 Found\r\nLocation: {self.redirect_to}\r\nContent-Length: 0\r\n\r\n".encode()
            )
            await writer.drain()
            return True
        if self.mode == "huge":
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n".encode())
            chunk = b"x" * 65536
            while self.huge_bytes_sent < HUGE:
                writer.write(chunk)
                await writer.drain()  # blocks once the sender stops reading
                self.huge_bytes_sent += len(chunk)
            return False
        status = self.status if self.mode == "status" else 204
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        if 200 <= status < 300:
            self.answered_ok.append(headers[EVENT_ID_HEADER.lower()])
        return True
