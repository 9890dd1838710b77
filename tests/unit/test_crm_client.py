"""The CRM lookup against a real local HTTP server: answers, cache and its TTL,
timeouts and a dead CRM falling back to the last known or stored tier at once."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dialer.config.tiers import CrmConfig
from dialer.crm_client import CrmClient


@dataclass
class Crm:
    """What the fake CRM answers; tests change it while it runs."""

    tiers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    status: int = 200
    plain: bool = False
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def crm() -> Iterator[tuple[Crm, str]]:
    state = Crm()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            time.sleep(state.delay)
            phone = self.path.rsplit("/", 1)[-1]
            if state.status != 200:
                self.send_response(state.status)
                self.end_headers()
                return
            if phone.replace("%2B", "+") not in state.tiers:
                self.send_response(404)
                self.end_headers()
                return
            tier = state.tiers[phone.replace("%2B", "+")]
            body = tier.encode() if state.plain else json.dumps({"tier": tier, "id": phone}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain" if state.plain else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(base: str, clock: Clock, **settings: float) -> CrmClient:
    config = CrmConfig(url=base + "/tier/{phone}", **{"timeout": 0.3, "cache_ttl": 60, "retry_after": 30, **settings})
    return CrmClient(config, clock=clock)


async def test_the_crm_gives_the_tier(crm: tuple[Crm, str]) -> None:
    state, base = crm
    state.tiers["+12125550123"] = "Key"
    lookup = client(base, Clock())
    try:
        answer = await lookup.tier("+12125550123", None, stored="standard")
        assert (answer.tier, answer.source) == ("key", "crm")
        assert state.requests == ["/tier/%2B12125550123"]
    finally:
        await lookup.close()


async def test_a_plain_text_answer_is_the_tier(crm: tuple[Crm, str]) -> None:
    state, base = crm
    state.tiers["555"] = "gold\n"
    state.plain = True
    lookup = client(base, Clock())
    try:
        assert (await lookup.tier("555", None, stored=None)).tier == "gold"
    finally:
        await lookup.close()


async def test_answers_are_cached_for_the_ttl(crm: tuple[Crm, str]) -> None:
    state, base = crm
    state.tiers["555"] = "gold"
    clock = Clock()
    lookup = client(base, clock, cache_ttl=60)
    try:
        assert (await lookup.tier("555", None, stored=None)).source == "crm"
        state.tiers["555"] = "key"
        clock.now += 59
        cached = await lookup.tier("555", None, stored=None)
        assert (cached.tier, cached.source) == ("gold", "cache")
        assert len(state.requests) == 1
        clock.now += 2  # past the TTL: asked again, and the CRM's change is seen
        fresh = await lookup.tier("555", None, stored=None)
        assert (fresh.tier, fresh.source) == ("key", "crm")
        assert len(state.requests) == 2
    finally:
        await lookup.close()


async def test_a_slow_crm_costs_one_timeout_then_the_stored_tier_comes_at_once(crm: tuple[Crm, str]) -> None:
    state, base = crm
    state.tiers["555"] = "key"
    state.delay = 2.0
    clock = Clock()
    lookup = client(base, clock, timeout=0.3, retry_after=30)
    try:
        started = time.monotonic()
        answer = await lookup.tier("555", None, stored="gold")
        took = time.monotonic() - started
        assert (answer.tier, answer.source) == ("gold", "stored")
        assert 0.25 <= took < 1.0, took
        # The CRM is left alone for retry_after: no wait at all, no request.
        started = time.monotonic()
        again = await lookup.tier("556", None, stored="standard")
        assert time.monotonic() - started < 0.05
        assert (again.tier, again.source) == ("standard", "stored")
        assert len(state.requests) == 1
        # After retry_after the CRM is asked again.
        state.delay = 0.0
        clock.now += 31
        assert (await lookup.tier("555", None, stored="gold")).source == "crm"
    finally:
        await lookup.close()


async def test_the_last_known_answer_outlives_the_ttl_when_the_crm_fails(crm: tuple[Crm, str]) -> None:
    state, base = crm
    state.tiers["555"] = "key"
    clock = Clock()
    lookup = client(base, clock, cache_ttl=10)
    try:
        assert (await lookup.tier("555", None, stored="standard")).tier == "key"
        clock.now += 100
        state.status = 503
        answer = await lookup.tier("555", None, stored="standard")
        assert (answer.tier, answer.source) == ("key", "last_known")
    finally:
        await lookup.close()


async def test_a_dead_crm_falls_back_to_the_stored_tier_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    lookup = client(f"http://127.0.0.1:{port}", Clock(), timeout=2.0)
    try:
        started = time.monotonic()
        answer = await lookup.tier("555", None, stored="gold")
        assert (answer.tier, answer.source) == ("gold", "stored")
        assert time.monotonic() - started < 1.0
        assert lookup.failures == 1
    finally:
        await lookup.close()


async def test_a_customer_the_crm_does_not_know_keeps_the_stored_tier(crm: tuple[Crm, str]) -> None:
    state, base = crm
    lookup = client(base, Clock())
    try:
        answer = await lookup.tier("999", None, stored="gold")
        assert (answer.tier, answer.source) == ("gold", "unknown")
        assert lookup.failures == 0
        # The CRM is fine: the next customer is asked straight away.
        state.tiers["555"] = "key"
        assert (await lookup.tier("555", None, stored=None)).source == "crm"
    finally:
        await lookup.close()


async def test_the_url_template_takes_the_customer_id() -> None:
    lookup = CrmClient(CrmConfig(url="https://crm.example/api/customers/{customer_id}/tier?phone={phone}"))
    try:
        assert lookup.url("+1 555", "AC/7") == "https://crm.example/api/customers/AC%2F7/tier?phone=%2B1%20555"
    finally:
        await lookup.close()
