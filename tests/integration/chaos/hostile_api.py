"""Hostile requests at the control API (issue 11, items 1, 5, 9 and 11), and the API leads.

Every answer is recorded; the checks want a 4xx (or 503 while AMI is down),
never a server error. Injected AMI actions dial a canary number, so an
injection that got through shows up in the carrier's own log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.chaos.lab_setup import CANARY, CHAOS, GUARD, ChaosLab
from tests.integration.chaos.run_record import ApiCall

INJECTED = f"\r\n\r\nAction: Originate\r\nChannel: PJSIP/{CANARY}@carrier\r\nApplication: Wait\r\nData: 1\r\nAsync: true"


def _requests(lab: ChaosLab, rng: random.Random) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, method, path, httpx keyword arguments); the token is added unless a header is given."""
    big = "x" * (8 * 1024 * 1024)
    return [
        ("queue CR/LF login", "POST", "/agents/agent1/login", {"json": {"queues": ["sales" + INJECTED]}}),
        ("queue CR/LF logout", "POST", "/agents/agent2/logout", {"json": {"queues": ["sales" + INJECTED]}}),
        ("queue NUL", "POST", "/agents/agent1/login", {"json": {"queues": ["sa\0les"]}}),
        ("3000 queues", "POST", "/agents/agent3/logout", {"json": {"queues": [f"q{i}" for i in range(3000)]}}),
        ("pause reason CR/LF", "POST", "/agents/agent1/pause", {"json": {"paused": False, "reason": "x" + INJECTED}}),
        ("pause queue CR/LF", "POST", "/agents/agent1/pause", {"json": {"paused": False, "queue": "sales" + INJECTED}}),
        ("lead 8 MB data", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": "1010030001", "data": {"k": big}}}),
        ("lead 8 MB name", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": "1010030002", "name": big}}),
        ("lead phone int", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": 1010030003}}),
        ("lead phone CR/LF", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": "101003\r\n0004"}}),
        ("lead NUL name", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": "1", "name": "a\0b"}}),
        ("lead data list", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": "1010030005", "data": [1, 2]}}),
        ("lead deep data", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": "1010030006", "data": _deep(60)}}),
        ("lead value text", "POST", f"/campaigns/{CHAOS}/leads", {"json": {"phone": "1010030007", "value": "abc"}}),
        ("lead bad zone", "POST", f"/campaigns/{GUARD}/leads", {"json": {"phone": "+12025550100", "timezone": "../../etc"}}),
        ("body not JSON", "POST", f"/campaigns/{CHAOS}/leads", {"content": b"{", "headers_extra": {"Content-Type": "application/json"}}),
        ("body null", "POST", "/dispositions", {"json": None}),
        ("body 4 MB array", "POST", "/dispositions", {"content": b"[" + b"1," * (2 * 1024 * 1024) + b"1]",
                                                       "headers_extra": {"Content-Type": "application/json"}}),
        ("disposition types", "POST", "/dispositions", {"json": {"attempt_id": 7, "code": ["sale"], "lead_id": "x"}}),
        ("lead id overflow", "GET", "/leads/99999999999999999999999999", {}),
        ("phone query huge", "GET", "/leads", {"params": {"phone": "1" * 30_000}}),
        ("campaign NUL", "GET", "/campaigns/a%00b", {}),
        ("path traversal", "GET", "/campaigns/..%2F..%2Fetc%2Fpasswd", {}),
        ("no token", "GET", "/status", {"headers": {}}),
        ("empty bearer", "GET", "/status", {"headers": {"Authorization": "Bearer"}}),
        ("wrong token", "POST", f"/campaigns/{CHAOS}/stop", {"headers": {"Authorization": "Bearer " + "A" * 43}}),
        ("basic auth", "GET", "/agents", {"headers": {"Authorization": "Basic YWRtaW46YWRtaW4="}}),
        ("huge token", "GET", "/status", {"headers": {"Authorization": "Bearer " + "t" * 60_000}}),
        ("token prefix", "GET", "/status", {"headers": {"Authorization": "Bearer " + lab.token[:-1]}}),
        ("bad token + CR/LF queue", "POST", "/agents/agent1/login",
         {"headers": {"Authorization": "Bearer nope"}, "json": {"queues": ["sales" + INJECTED]}}),
        ("unknown agent", "POST", "/agents/agent99/login", {"json": {}}),
        ("control dropped", "POST", f"/campaigns/drop1-{rng.randrange(0, 47):02d}/{rng.choice(['pause', 'resume'])}", {}),
    ]  # fmt: skip


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


async def _send(
    client: httpx.AsyncClient, lab: ChaosLab, name: str, method: str, path: str, kwargs: dict[str, Any]
) -> tuple[ApiCall, str]:
    kwargs = dict(kwargs)
    headers = kwargs.pop("headers", None)
    if headers is None:
        headers = {"Authorization": f"Bearer {lab.token}"}
    headers = {**headers, **kwargs.pop("headers_extra", {})}
    started = time.time()
    try:
        response = await client.request(method, path, headers=headers, **kwargs)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return ApiCall(name, started, None, time.time() - started, f"{type(exc).__name__}: {exc}"), ""
    body = response.text
    return ApiCall(name, started, response.status_code, time.time() - started, body[:300]), body


async def fuzz(lab: ChaosLab, rng: random.Random, leak: Callable[[str], None]) -> list[ApiCall]:
    """Every hostile request once, then the status pages, which must not echo planted content."""
    calls = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{lab.http_port}", timeout=20.0) as client:
        for name, method, path, kwargs in _requests(lab, rng):
            call, body = await _send(client, lab, name, method, path, kwargs)
            calls.append(call)
            if lab.secret_marker in body:
                leak(f"the answer to {name}")
        for path in ("/status", "/campaigns", "/readyz"):
            call, body = await _send(client, lab, f"GET {path}", "GET", path, {})
            calls.append(call)
            if lab.secret_marker in body:
                leak(f"GET {path}")
    return calls


async def add_api_leads(lab: ChaosLab, targets: list[tuple[str, str, str]] | None = None) -> list[ApiCall]:
    """Leads through the API, (campaign, number, why) each; by default the run's own:
    allowed ones and ones that must never be dialed."""
    calls = []
    if targets is None:
        targets = [(CHAOS, n, why) for n, why in lab.api_chaos] + [(GUARD, n, why) for n, why in lab.api_guard]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{lab.http_port}", timeout=10.0) as client:
        for campaign, number, why in targets:
            call, _ = await _send(
                client, lab, f"api lead {campaign} {why} {number}", "POST", f"/campaigns/{campaign}/leads",
                {"json": {"phone": number, "name": f"API {why}"}},
            )
            calls.append(call)
    return calls
