"""The API's guards on what reaches AMI and on request sizes (issue 11, items 1 and 9).

A daemon with a real store and the fake AMI of `ops_fixtures`, which records each
action it is sent: a refused request must have sent none.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.http.service import start_http
from ops_fixtures import TOKEN, campaign_yaml, close_daemon, open_daemon, write_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+14155552671"
# The whole API's cap is 1 MiB (dialer.http.body_limit); this is over it.
OVER_THE_CAP = 2 * 1024 * 1024
INJECTED = "sales\r\nAction: Originate\r\nChannel: Local/s@x\r\nApplication: System\r\nData: touch /tmp/owned"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    (tmp_path / "campaigns" / "spring.yaml").write_text(campaign_yaml("spring", queue="support"))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as http:
        yield http


def sent(daemon: Daemon) -> list[tuple[str, str | None]]:
    assert daemon.ami is not None
    return [(a["Action"], a.get("Queue")) for a in daemon.ami.sent]  # type: ignore[attr-defined]


@pytest.mark.parametrize("route", ["login", "logout"])
@pytest.mark.parametrize(
    "queue", [INJECTED, "sales\nAction: Command", "sales\r", "sales\x00", "sal es", "sales,x"]
)
async def test_a_queue_that_is_no_plain_name_is_422_and_no_action_is_sent(
    client: httpx.AsyncClient, daemon: Daemon, route: str, queue: str
) -> None:
    response = await client.post(f"/agents/agent1/{route}", headers=AUTH, json={"queues": [queue]})
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("body.queues.0: ")
    assert sent(daemon) == []


async def test_three_thousand_queues_are_422_and_no_action_is_sent(client: httpx.AsyncClient, daemon: Daemon) -> None:
    response = await client.post("/agents/agent1/login", headers=AUTH, json={"queues": ["sales"] * 3000})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.queues"
    assert sent(daemon) == []


async def test_only_queues_the_config_knows_and_each_once(client: httpx.AsyncClient, daemon: Daemon) -> None:
    unknown = await client.post("/agents/agent1/login", headers=AUTH, json={"queues": ["sales", "billing"]})
    assert unknown.status_code == 422
    assert unknown.json() == {"message": "queues: not a queue of this daemon's config: billing", "errors": []}
    paused = await client.post("/agents/agent1/pause", headers=AUTH, json={"queue": "billing"})
    assert paused.status_code == 422
    assert sent(daemon) == []
    # An agent's queue (vip is agent2's), a campaign's queue (support), repeats sent once.
    ok = await client.post("/agents/agent1/login", headers=AUTH, json={"queues": ["vip", "support", "vip", "vip"]})
    assert ok.status_code == 200, ok.text
    assert sent(daemon) == [("QueueAdd", "vip"), ("QueueAdd", "support")]


@pytest.mark.parametrize("reason", ["lunch\r\nAction: Command", "lunch\x00", "lunch\u2028Action: Command", "tab\there", "x\ud800"])
async def test_a_pause_reason_must_be_printable_ascii(client: httpx.AsyncClient, daemon: Daemon, reason: str) -> None:
    # As JSON escapes: a lone surrogate is valid JSON text but no UTF-8.
    body = json.dumps({"reason": reason})
    response = await client.post("/agents/agent1/pause", headers={**AUTH, "Content-Type": "application/json"},
                                 content=body)
    assert response.status_code == 422
    assert sent(daemon) == []


async def test_a_body_over_the_cap_is_413_before_it_is_read(client: httpx.AsyncClient, daemon: Daemon) -> None:
    lead = {"phone": PHONE, "data": {"notes": "x" * OVER_THE_CAP}}
    response = await client.post("/campaigns/spring/leads", headers=AUTH, json=lead)
    assert response.status_code == 413
    assert response.json() == {"message": "request body too large: 1048576 bytes at most", "errors": []}
    assert daemon.store is not None
    assert await daemon.store.find_leads(phone=PHONE) == []


async def test_a_streamed_body_is_cut_at_the_cap_with_413(client: httpx.AsyncClient, daemon: Daemon) -> None:
    chunks_read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        yield b'{"phone": "%s", "data": {"notes": "' % PHONE.encode()
        for _ in range(400):  # 400 x 64 KiB: 25 MiB on offer
            chunks_read += 1
            yield b"x" * 65536
        yield b'"}}'

    response = await client.post(
        "/campaigns/spring/leads", headers={**AUTH, "Content-Type": "application/json"}, content=chunks()
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["message"].startswith("request body too large")
    assert chunks_read < 400
    assert daemon.store is not None
    assert await daemon.store.find_leads(phone=PHONE) == []


async def test_a_lead_data_field_over_its_cap_is_422(client: httpx.AsyncClient) -> None:
    big = await client.post(
        "/campaigns/spring/leads", headers=AUTH, json={"phone": PHONE, "data": {"notes": "x" * 20000}}
    )
    assert big.status_code == 422
    many = await client.post(
        "/campaigns/spring/leads", headers=AUTH, json={"phone": PHONE, "data": {f"k{i}": "v" for i in range(51)}}
    )
    assert many.status_code == 422
    fine = await client.post(
        "/campaigns/spring/leads", headers=AUTH, json={"phone": PHONE, "data": {"plan": "b", "note": "x" * 3000}}
    )
    assert fine.status_code == 201, fine.text


async def test_the_real_server_answers_a_huge_declared_body_with_413_at_once(daemon: Daemon) -> None:
    daemon.http = await start_http(daemon)
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.http.port)
    try:
        writer.write(
            b"POST /campaigns/spring/leads HTTP/1.1\r\nHost: dialer\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{\"phone\": \"+1415"
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 413"), status
    finally:
        writer.close()
