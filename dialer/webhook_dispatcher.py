"""Sends the webhook outbox: a task of its own beside the dialing loop, never in its way.

When woken (a disposition was written, a try ended), when a retry it scheduled falls
due, and otherwise every `idle_poll` seconds (rows another process wrote), it takes the
pending deliveries that are due, at most
`concurrency` in flight at once, and POSTs each one's stored body, signed afresh
(dialer.core.webhook_delivery). A try is bounded by the webhook's `timeout` in all
(connect, send, answer), follows no redirect, and reads no byte of the answer's body:
the status says whether it arrived. Its result goes back to the outbox row. A daemon
killed mid-try leaves the row pending, so the next start sends it again under the same
event id: delivery is at least once, and the receiver deduplicates by that id.

The endpoint's current settings (URL, secret, timeout, retries) come from the campaign
as loaded now, by webhook name, so fixing a campaign file fixes deliveries already
queued; a campaign or webhook removed since falls back to what the row recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog

from dialer import __version__
from dialer.config.models import Campaign
from dialer.config.webhooks import WebhookConfig, WebhookSecretUnavailable, resolve_secret
from dialer.core import webhook_delivery as wd
from dialer.store import webhook_outbox
from dialer.store.store import Store, StoreError
from dialer.store.webhook_outbox import Delivery

log = structlog.get_logger("dialer.webhooks")

CONCURRENCY = 4
"""Deliveries in flight at once, over every campaign and endpoint."""
POLL_INTERVAL = 1.0
"""Seconds between looks at the outbox while it may hold more due than there was room for."""
IDLE_POLL = 30.0
"""Seconds between looks at an outbox with nothing known to be due: deliveries written by
another process (a disposition from the command line, another daemon), or retries left by
a previous run. This process's own writes wake the dispatcher."""


@dataclass(frozen=True)
class Target:
    url: str
    secret_source: str
    timeout: float
    max_attempts: int
    first_retry: float
    max_retry: float


def target_for(delivery: Delivery, campaigns: Mapping[str, Campaign]) -> Target:
    campaign = campaigns.get(delivery.campaign)
    hook = next((h for h in campaign.webhooks if h.name == delivery.webhook), None) if campaign else None
    if hook is None:
        defaults = WebhookConfig.model_fields
        return Target(
            url=delivery.url,
            secret_source=delivery.secret_source,
            timeout=defaults["timeout"].default,
            max_attempts=defaults["max_attempts"].default,
            first_retry=defaults["first_retry"].default,
            max_retry=defaults["max_retry"].default,
        )
    return Target(hook.url, hook.secret_source(), hook.timeout, hook.max_attempts, hook.first_retry, hook.max_retry)


class WebhookDispatcher:
    def __init__(
        self,
        store: Store,
        campaigns: Callable[[], Mapping[str, Campaign]],
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        concurrency: int = CONCURRENCY,
        poll_interval: float = POLL_INTERVAL,
        idle_poll: float = IDLE_POLL,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._campaigns = campaigns
        self._clock = clock
        self._rand = rand
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._idle_poll = idle_poll
        self._retries: list[float] = []
        """When the retries this dispatcher scheduled fall due (its clock's seconds)."""
        self._full = True
        """The last look found as many due as there was room for: more may wait."""
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        # verify=True (the default, said here so no one drops it); no redirects followed:
        # a receiver must not send our signed body, or us, somewhere else.
        self._http = httpx.AsyncClient(
            verify=True,
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"User-Agent": f"dialer/{__version__} webhooks", "Content-Type": "application/json"},
        )
        # Since the daemon started, per (campaign, webhook): for /metrics.
        self.delivered: Counter[tuple[str, str]] = Counter()
        self.failed_tries: Counter[tuple[str, str]] = Counter()
        self.dead: Counter[tuple[str, str]] = Counter()

    def wake(self) -> None:
        """Look at the outbox now (a disposition was just written, or a try ended)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.dispatch_due()
                except StoreError as exc:
                    log.warning("webhook.outbox_unreadable", error=str(exc))
                except Exception:
                    # Whatever it was, deliveries must not stop for the rest of the daemon's life.
                    log.exception("webhook.dispatch_failed")
                self._wake.clear()
                waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                try:
                    await asyncio.wait(waits, timeout=self._next_look(), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()
        finally:
            await self.close()

    def _next_look(self) -> float:
        """Seconds until the outbox is worth a query: no SQL while nothing can be due."""
        if self._full:
            return self._poll_interval
        now = self._clock()
        self._retries = [at for at in self._retries if at > now]
        return min([self._idle_poll, *(at - now for at in self._retries)])

    async def close(self) -> None:
        """Cancel the tries in flight: their rows stay pending and go again at the next start."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()
        await self._http.aclose()

    async def dispatch_due(self) -> int:
        """Start a try for each due delivery there is room for; returns how many started."""
        room = self._concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        now = datetime.fromtimestamp(self._clock(), UTC)
        found = await webhook_outbox.due(self._store, now, room, skip=list(self._in_flight))
        self._full = len(found) == room
        for delivery in found:
            self._in_flight[delivery.id] = asyncio.create_task(
                self._deliver(delivery), name=f"webhook-{delivery.id}"
            )
        return len(found)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            target = target_for(delivery, self._campaigns())
            status, error = await self.post(delivery, target)
            ok = wd.succeeded(status)
            now = datetime.fromtimestamp(self._clock(), UTC)
            transition = wd.after_try(
                delivery.tries,
                ok,
                max_attempts=target.max_attempts,
                now=now,
                first_retry=target.first_retry,
                max_retry=target.max_retry,
                rand=self._rand(),
            )
            try:
                written = await webhook_outbox.record_try(
                    self._store, delivery.id, transition, status=status, error=error, now=now
                )
            except StoreError as exc:
                # Left pending: sent again, under the same event id.
                log.warning("webhook.result_not_written", delivery=delivery.id, error=str(exc))
                return
            fields = dict(
                delivery=delivery.id, event_id=delivery.event_id, campaign=delivery.campaign,
                webhook=delivery.webhook, tries=transition.tries, status=status,
            )
            key = (delivery.campaign, delivery.webhook)
            if ok:
                self.delivered[key] += 1
                log.info("webhook.delivered", **fields)
            elif transition.state is wd.OutboxState.dead:
                self.failed_tries[key] += 1
                self.dead[key] += 1
                log.error("webhook.dead_letter", error=error, written=written, **fields)
            else:
                self.failed_tries[key] += 1
                if transition.next_try_at is not None:
                    self._retries.append(transition.next_try_at.timestamp())
                log.warning(
                    "webhook.try_failed", error=error, next_try_at=transition.next_try_at.isoformat()
                    if transition.next_try_at else None, **fields,
                )
        except Exception:
            log.exception("webhook.deliver_failed", delivery=delivery.id)
        finally:
            self._in_flight.pop(delivery.id, None)
            self._wake.set()

    async def post(self, delivery: Delivery, target: Target) -> tuple[int | None, str | None]:
        """One try: (HTTP status or None, what went wrong or None)."""
        try:
            secret = resolve_secret(target.secret_source)
        except WebhookSecretUnavailable as exc:
            return None, f"secret unavailable: {exc}"
        headers = {
            wd.SIGNATURE_HEADER: wd.signature(secret, delivery.body, int(self._clock())),
            wd.EVENT_ID_HEADER: delivery.event_id,
            wd.ATTEMPT_HEADER: str(delivery.tries + 1),
        }
        try:
            # httpx's timeouts are per phase, and a receiver dripping its headers a byte at a
            # time never trips them: the whole try has one deadline.
            async with asyncio.timeout(target.timeout):
                async with self._http.stream(
                    "POST", target.url, content=delivery.body, headers=headers, timeout=target.timeout
                ) as response:
                    # The body is never read: leaving this block closes the connection, so a
                    # receiver answering with gigabytes costs nothing.
                    status = response.status_code
                    if 300 <= status < 400:
                        location = response.headers.get("location", "")[:120]
                        return status, f"HTTP {status} redirect to {location!r}, not followed"
                    if not wd.succeeded(status):
                        return status, f"HTTP {status}"
                    return status, None
        except TimeoutError:
            return None, f"no answer within {target.timeout:g} s"
        except httpx.InvalidURL as exc:
            return None, f"invalid URL: {exc}"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
