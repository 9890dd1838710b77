"""The API's connections cannot take the daemon's file descriptors (found attacking issue 11).

uvicorn kept a connection that never completed a request open for ever: with the
1024 descriptors systemd gives a service, a few hundred idle or slowly written
connections left none for `/healthz`, FastAGI calls, AMI reconnects or the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from dialer.http.service import HttpService

# The cap of dialer.http.connection_guard, and more than it.
CAP = 200
CROWD = CAP + 60


def tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    return app


@pytest.fixture
async def service() -> AsyncIterator[HttpService]:
    http = HttpService(tiny_app(), "127.0.0.1", 0)
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b"" or reader.at_eof()
    except (asyncio.TimeoutError, ConnectionError):
        return False


async def get_healthz(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_connections_beyond_the_cap_are_closed_at_once(service: HttpService) -> None:
    assert service.port is not None
    crowd = [await asyncio.open_connection("127.0.0.1", service.port) for _ in range(CROWD)]
    try:
        for _, writer in crowd:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        closed = await asyncio.gather(*(closed_within(reader, 2.0) for reader, _ in crowd))
        assert CROWD - CAP <= sum(closed) <= CROWD - CAP + 5  # the late ones only
    finally:
        for _, writer in crowd:
            writer.close()


async def test_a_request_that_does_not_arrive_whole_in_time_is_closed(
    service: HttpService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dialer.http.connection_guard.READ_TIMEOUT_S", 0.5)
    assert service.port is not None
    silent = await asyncio.open_connection("127.0.0.1", service.port)
    headers = await asyncio.open_connection("127.0.0.1", service.port)
    headers[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    body = await asyncio.open_connection("127.0.0.1", service.port)
    body[1].write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    # A keep-alive client that answers fine, then starts its next request and stalls.
    again = await asyncio.open_connection("127.0.0.1", service.port)
    again[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(again[0].readuntil(b'"ok"}'), 5)).startswith(b"HTTP/1.1 200")
    again[1].write(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    try:
        for reader, _ in (silent, headers, body, again):
            assert await closed_within(reader, 5.0)
        assert time.monotonic() - started < 4.0
        # A slow but steady client that finishes in time is served.
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            writer.write(piece)
            await asyncio.sleep(0.1)
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
        writer.close()
        assert (await get_healthz(service.port)).startswith(b"HTTP/1.1 200")
    finally:
        for _, writer in (silent, headers, body, again):
            writer.close()
