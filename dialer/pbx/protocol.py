"""The one interface between the daemon and a PBX.

It is exactly what the daemon uses of `dialer.ami.gateway.AmiGateway`, so the
gateway satisfies it unchanged and a simulated PBX (`dialer.pbx.simulated`)
can stand in for Asterisk. Events stay raw AMI header dicts: the daemon's one
parser (`dialer.ami.events.to_record`) reads both, so a simulation exercises
the same mapping a real Asterisk does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

OnLogin = Callable[[], Awaitable[None]]
OnAction = Callable[[str, float], None]


@runtime_checkable
class Pbx(Protocol):
    connected: asyncio.Event
    """Set while logged in; actions fail with `AmiNotConnected` otherwise."""
    events: asyncio.Queue[tuple[dict[str, str], float]]
    """Raw AMI events with the clock's time they arrived, for one consumer."""
    reconnects: int
    last_error: str | None
    """Why the last connect failed, None once logged in."""
    on_action: OnAction | None
    """Told each action's name and seconds to its reply (metrics)."""

    def on_login(self, callback: OnLogin) -> None:
        """Run `callback` after every successful login (first connect and each reconnect)."""

    async def connect_once(self, stopping: asyncio.Event | None = None) -> None:
        """Connect and log in once, then wait (bounded, until `stopping`) for the PBX to be
        fully booted; or raise an `AmiError` saying why not. `connected` is set only then."""

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep a logged-in connection (reconnecting, watching it) until `stopping` is set."""

    async def close(self) -> None: ...

    async def action(
        self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None
    ) -> Any:
        """Send one AMI action; its reply (a list of messages with `as_list`), or an `AmiError`."""

    async def originate(
        self,
        *,
        attempt_id: str,
        channel: str,
        context: str,
        exten: str,
        timeout_ms: int,
        caller_id: str,
        variables: Mapping[str, str],
        beside: str | None = None,
    ) -> None:
        """Queue an async Originate whose ActionID and ChannelId are the attempt id.

        `beside`: an agent's interface whose server must carry the call (a supervisor's
        ChanSpy sees only its own server's channels); one server has nothing to choose."""

    async def queue_add(self, queue: str, interface: str, member_name: str, penalty: int = 0) -> None: ...

    async def queue_remove(self, queue: str, interface: str) -> None: ...

    async def queue_members(self, queue: str) -> list[dict[str, str]]:
        """The queue's members as `QueueMember` entries of a QueueStatus reply."""
