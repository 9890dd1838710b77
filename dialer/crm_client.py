"""Customer tiers from an external CRM over HTTP, never holding up a dial.

Each lookup is `GET <url template>` with the customer's phone and id filled
in; the answer is a JSON object with the tier in `field` (or a plain-text
body that is the tier). Answers are cached for `cache_ttl` seconds. When the
CRM is slow (over `timeout`), down, or answers with an error, the caller gets
the last answer the CRM gave for that customer, else the tier stored in the
database, at once; and for `retry_after` seconds the CRM is not asked again,
so a dead CRM costs one timeout, not one per call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import structlog

from dialer.config.tiers import CrmConfig

log = structlog.get_logger("dialer.crm")


@dataclass(frozen=True)
class CrmAnswer:
    tier: str | None
    source: str
    """crm (asked just now), cache (a fresh answer), last_known (a stale answer after a
    failure), stored (the database's tier after a failure), unknown (the CRM does not know)."""


@dataclass
class _Cached:
    tier: str | None
    at: float


class CrmClient:
    def __init__(
        self,
        config: CrmConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._down_until = 0.0
        self.lookups = 0
        self.failures = 0
        headers = {"Accept": "application/json"}
        if config.token_env and os.environ.get(config.token_env):
            headers["Authorization"] = f"Bearer {os.environ[config.token_env]}"
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout), headers=headers, transport=transport, follow_redirects=False
        )

    async def close(self) -> None:
        await self._http.aclose()

    def url(self, phone: str, customer_id: str | None) -> str:
        return self.config.url.replace("{phone}", quote(phone, safe="")).replace(
            "{customer_id}", quote(customer_id or "", safe="")
        )

    async def tier(self, phone: str, customer_id: str | None, stored: str | None) -> CrmAnswer:
        key = f"{phone}|{customer_id or ''}"
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached.at < self.config.cache_ttl:
            return CrmAnswer(cached.tier if cached.tier is not None else stored, "cache")
        if now < self._down_until:
            return self._fallback(cached, stored)
        self.lookups += 1
        try:
            # httpx's timeout is per phase (connect, read...); the dial waits for the sum at most once.
            tier, known = await asyncio.wait_for(self._ask(phone, customer_id), self.config.timeout)
        except (TimeoutError, httpx.HTTPError, ValueError) as exc:
            self.failures += 1
            self._down_until = self._clock() + self.config.retry_after
            log.warning("crm.lookup_failed", number=phone, error=repr(exc), retry_after=self.config.retry_after)
            return self._fallback(cached, stored)
        self._cache[key] = _Cached(tier, self._clock())
        if not known:
            return CrmAnswer(stored, "unknown")
        return CrmAnswer(tier, "crm")

    def _fallback(self, cached: _Cached | None, stored: str | None) -> CrmAnswer:
        if cached is not None and cached.tier is not None:
            return CrmAnswer(cached.tier, "last_known")
        return CrmAnswer(stored, "stored")

    async def _ask(self, phone: str, customer_id: str | None) -> tuple[str | None, bool]:
        response = await self._http.get(self.url(phone, customer_id))
        if response.status_code == 404:
            return None, False  # the CRM is up but does not know this customer
        response.raise_for_status()
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            value = body.get(self.config.field) if isinstance(body, dict) else None
        else:
            value = response.text
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"no tier in the CRM's answer: {response.text[:200]!r}")
        return value.strip().lower(), True
