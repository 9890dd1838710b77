"""The FastAGI server's reading of a connection's AGI environment, bounded.

panoramisk's `Application.handler` reads the environment (`agi_*: value` lines up to
a blank line) in a loop that never ends when the peer closes before the blank line:
`read()` at end of stream returns b'' at once, without yielding, so the whole event
loop spun at 100 % (no dialing, no /healthz, killed by the watchdog). Any local
process reaching the AGI port could do it with one short write. It also waited for
ever on a connection that sent nothing, and buffered without limit.

`GuardedApplication` reads the environment with a deadline and the stream's size
limit, then hands the request to its route as panoramisk would.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import structlog
from panoramisk import fast_agi

log = structlog.get_logger("dialer.ivr")

# Asterisk writes the environment at once, as the call reaches AGI().
ENV_TIMEOUT_S = 10.0


class GuardedApplication(fast_agi.Application):  # type: ignore[misc]
    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                # Bounded by the stream's limit (64 KiB): LimitOverrunError past it.
                block = await asyncio.wait_for(reader.readuntil(b"\n\n"), ENV_TIMEOUT_S)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
                log.warning("agi.environment_unread", reason=type(exc).__name__)
                return
            lines = block[:-2].decode(self.default_encoding, errors="replace").split("\n")
            headers = OrderedDict(line.split(": ", 1) for line in lines if ": " in line)
            script = headers.get("agi_network_script")
            route = self._route.get(script) if script is not None else None
            if route is None:
                log.error("agi.no_route", script=(script or "")[:64])
                return
            request = fast_agi.Request(
                app=self, headers=headers, reader=reader, writer=writer, encoding=self.default_encoding
            )
            try:
                await route(request)
            except Exception:
                log.exception("agi.route_failed", script=script[:64])
        finally:
            writer.close()
