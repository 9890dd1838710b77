"""The AMI gateway: one supervised, logged-in connection to Asterisk.

panoramisk is wrapped, never used bare. What the wrapper adds to it:
- the login reply is checked (`connect()` alone succeeds with a wrong secret);
- panoramisk's own reconnect (fixed delay) and blind keepalive are switched
  off; `run()` owns the connection for the daemon's whole life, reconnecting
  with exponential backoff and jitter, and a ping watchdog notices a
  half-open connection;
- no action is ever re-sent after a reconnect: actions pending when the
  connection drops fail with `AmiNotConnected` (an Originate's fate is then
  settled from Asterisk's own events and channel list, never by dialing again);
- every action has a timeout;
- no value that would break AMI's line framing (CR, LF, NUL or any other
  control character: `dialer.ami.values`) is ever written: such an action
  raises `AmiUnsafeValue` before a byte leaves;
- events only go onto one asyncio queue that a single consumer reads.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from dialer.ami.errors import (
    AmiActionFailed,
    AmiError,
    AmiLoginFailed,
    AmiNotBooted,
    AmiNotConnected,
    AmiTimeout,
    AmiUnsafeValue,
)
from dialer.ami.values import interface_problem, problem_in_header_value, problems_in_fields, variable_problem

log = structlog.get_logger("dialer.ami")


class AmiServer(Protocol):
    """Where and how to log in: what the gateway reads of `dialer.config.models.AmiServer`.

    A protocol, so the AMI layer needs nothing from the config package (which builds on
    `dialer.ami.values` for its own checks).
    """

    host: str
    port: int
    username: str
    connect_timeout: float
    action_timeout: float
    ping_interval: float

    def resolve_secret(self) -> str: ...

OnLogin = Callable[[], Awaitable[None]]

BOOT_TIMEOUT = 30.0
"""Seconds a new session waits for `FullyBooted` before it goes on without it (logged)."""


class _Protocol(AMIProtocol):
    """panoramisk's protocol, quiet when the line drops before the manager takes it over.

    The manager adopts the protocol a loop turn after the connection is made; a peer
    that closes at once (a proxy, an Asterisk going down) made panoramisk log an
    AttributeError traceback at error level for what is only a failed connect.
    """

    def connection_lost(self, exc: Any) -> None:
        if self.factory is None:
            self.closed = True
            return
        super().connection_lost(exc)


class _Manager(Manager):
    """panoramisk's Manager with its self-managed reconnect and ping disabled."""

    def __init__(self, on_lost: Callable[[], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def ping(self) -> None:  # the gateway's watchdog pings, and checks the reply
        pass

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        # Anything panoramisk queued for re-sending is failed instead: a
        # re-sent Originate would dial the customer twice.
        while self.awaiting_actions:
            action = self.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(AmiNotConnected("connection lost before the reply"))
        self._on_lost()


def backoff_delays(base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> Iterable[float]:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... up to `cap`, each randomised."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        ceiling = min(cap, base * (2**attempt))
        yield rng.uniform(ceiling / 2, ceiling)
        attempt += 1


class Session(Protocol):
    """One PBX connection as `supervise` drives it: opened, watched, ended, opened again."""

    last_error: str | None
    reconnects: int
    where: str
    """For the log: which PBX."""

    async def connect_once(self, stopping: asyncio.Event | None = None) -> None:
        """Log in and wait until the PBX is fully booted (`wait_booted`); then `connected` is set."""

    async def after_login(self) -> None:
        """Run the login callbacks."""

    async def watch(self, stopping: asyncio.Event) -> None:
        """Return when the connection is lost, stalls or `stopping` is set."""

    def end_session(self) -> None:
        """Fail what still awaits a reply and drop the connection."""


async def supervise(session: Session, stopping: asyncio.Event, rng: random.Random | None = None) -> None:
    """Keep `session` logged in until `stopping` is set: reconnect with backoff, never re-send.

    The one reconnect policy, whatever the PBX behind it (`AmiGateway`, or a simulated one).
    """
    delays = iter(backoff_delays(rng=rng))
    while not stopping.is_set():
        try:
            await session.connect_once(stopping)
        except (AmiError, OSError, LookupError) as exc:
            # OSError/LookupError: the secret file or variable is unreadable right now
            # (a rotation in progress). Start-up refuses that loudly; later, the
            # supervisor must not die of it, or the daemon stays deaf for good.
            session.last_error = str(exc)
            delay = next(delays)
            log.warning("ami.connect_failed", error=str(exc), retry_in=round(delay, 2))
            await _sleep_or_stop(stopping, delay)
            continue
        session.last_error = None
        log.info("ami.logged_in", at=session.where, reconnects=session.reconnects)
        try:
            await session.after_login()
            # Only a session whose login work went through resets the backoff: an Asterisk
            # still loading its modules (`AmiNotBooted`) is retried ever more slowly.
            delays = iter(backoff_delays(rng=rng))
            await session.watch(stopping)
        except AmiError as exc:
            log.warning("ami.session_error", error=str(exc))
        finally:
            # Fail replies still awaited now, not after their own timeouts.
            session.end_session()
        if not stopping.is_set():
            session.reconnects += 1
            delay = next(delays)
            log.warning("ami.connection_lost", retry_in=round(delay, 2))
            await _sleep_or_stop(stopping, delay)


async def wait_booted(
    booted: asyncio.Event, lost: asyncio.Event, stopping: asyncio.Event | None, where: str, timeout: float
) -> None:
    """Return once the PBX says `FullyBooted` (at once if it did with the login).

    Asterisk takes AMI logins while it is still loading its modules: QueueAdd then
    answers "Invalid/unknown command" (app_queue not loaded) and the campaign would
    run with no agents. A PBX that never says it within `timeout` is logged and used
    anyway (`raise_if_not_booted` is the second guard). Raises AmiNotConnected if the connection
    is lost, or `stopping` is set, meanwhile.
    """
    if booted.is_set():
        return
    log.info("ami.waiting_for_boot", at=where)
    await _wait_any(booted, lost, *([stopping] if stopping is not None else []), timeout=timeout)
    if lost.is_set():
        raise AmiNotConnected("connection lost before Asterisk was fully booted")
    if stopping is not None and stopping.is_set():
        raise AmiNotConnected("stopped before Asterisk was fully booted")
    if not booted.is_set():
        log.warning("ami.not_fully_booted", at=where, waited=timeout, going_on=True)


def raise_if_not_booted(exc: AmiActionFailed) -> None:
    """A QueueAdd/QueueStatus refused as an unknown command: app_queue is not loaded yet.

    Asterisk is still booting (and never said FullyBooted): `AmiNotBooted` ends the
    session, which logs in again with backoff, rather than run the campaign with no agents.
    """
    if "invalid/unknown command" in exc.message.lower():
        raise AmiNotBooted(f"{exc.action}: {exc.message} (Asterisk not fully booted)") from exc


class Pinged(Protocol):
    async def action(self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None) -> Any: ...


async def ping_until_lost(pbx: Pinged, stopping: asyncio.Event, lost: asyncio.Event, interval: float) -> None:
    """Ping on an interval; return when the connection is lost, stalls (no Pong in time) or we stop."""
    while not (stopping.is_set() or lost.is_set()):
        await _wait_any(stopping, lost, timeout=interval)
        if stopping.is_set() or lost.is_set():
            return
        try:
            await pbx.action({"Action": "Ping"})
        except AmiError as exc:
            log.warning("ami.ping_failed", error=str(exc))
            return


async def subscribe(pbx: Pinged, names: Iterable[str]) -> bool:
    """Ask the PBX for these events alone on this session (AMI `Filter`, by event name).

    Filters live as long as the session, so this runs after every login; all are sent
    at once (one round trip). Asterisk grants `Filter` only to a user with `system`
    write, which the shipped manager.conf withholds (it filters with `eventfilter`
    lines instead): a refusal is no error, the gateway's own filter still drops the
    rest. Returns False if refused.
    """
    replies = await asyncio.gather(
        *(
            pbx.action({"Action": "Filter", "Operation": "Add", "MatchCriteria": f"action(include),name({name})"})
            for name in names
        ),
        return_exceptions=True,
    )
    for reply in replies:
        if isinstance(reply, AmiActionFailed):
            log.info("ami.filter_refused", error=reply.message, falls_back_to="manager.conf eventfilter lines")
            return False
        if isinstance(reply, BaseException):
            raise reply
    return True



def originate_action(
    *,
    attempt_id: str,
    channel: str,
    context: str,
    exten: str,
    timeout_ms: int,
    caller_id: str,
    variables: Mapping[str, str],
) -> dict[str, Any]:
    """The async Originate every PBX behind `Pbx` sends (the gateway, the simulated one), checked.

    Its ActionID and ChannelId are the attempt id, so its events and, after a
    restart, its channel can be matched to the attempt.
    """
    problems = [p for k, v in variables.items() if (p := variable_problem(k, v)) is not None]
    # The channel carries the lead's number: `&` or `,` in it would dial more, or otherwise.
    problems += [f"Channel: {p}" for p in [interface_problem(channel)] if p is not None]
    if problems:
        # Originate splits `Variable` on commas: one bad value would set other variables.
        raise AmiUnsafeValue("Originate", problems)
    return {
        "Action": "Originate",
        "ActionID": attempt_id,
        "ChannelId": attempt_id,
        "Channel": channel,
        "Context": context,
        "Exten": exten,
        "Priority": "1",
        "Timeout": str(timeout_ms),
        "CallerID": caller_id,
        "Async": "true",
        "Variable": [f"{k}={v}" for k, v in variables.items()],
    }


class QueueActions:
    """Queue membership over `action`: what Asterisk's replies to these actions mean.

    Shared by every PBX that answers AMI actions (the gateway, the simulated one), so
    "already there", "not there" and "not booted yet" are read in one place.
    """

    async def action(
        self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None
    ) -> Any:
        raise NotImplementedError

    async def queue_add(self, queue: str, interface: str, member_name: str, penalty: int = 0) -> None:
        try:
            await self.action(
                {
                    "Action": "QueueAdd",
                    "Queue": queue,
                    "Interface": interface,
                    "MemberName": member_name,
                    "Penalty": str(penalty),
                    "Paused": "false",
                }
            )
        except AmiActionFailed as exc:
            if "already there" not in exc.message.lower():
                raise_if_not_booted(exc)
                raise

    async def queue_remove(self, queue: str, interface: str) -> None:
        try:
            await self.action({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
        except AmiActionFailed as exc:
            if "not there" not in exc.message.lower():
                raise

    async def queue_members(self, queue: str) -> list[dict[str, str]]:
        try:
            replies = await self.action({"Action": "QueueStatus", "Queue": queue}, as_list=True)
        except AmiActionFailed as exc:
            raise_if_not_booted(exc)
            raise
        replies = replies if isinstance(replies, list) else [replies]
        return [dict(m) for m in replies if m.get("Event", "").lower() == "queuemember"]

class AmiGateway(QueueActions):
    def __init__(
        self,
        server: AmiServer,
        *,
        wanted_events: frozenset[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.where = f"{server.host}:{server.port}"
        self.events: asyncio.Queue[tuple[dict[str, str], float]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._wanted = wanted_events
        self._clock = clock
        self._manager: _Manager | None = None
        self._lost = asyncio.Event()
        self._booted = asyncio.Event()
        self.boot_timeout = BOOT_TIMEOUT
        self._inflight: set[asyncio.Future[Any]] = set()
        self._on_login: list[OnLogin] = []
        self.last_error: str | None = None
        self.on_action: Callable[[str, float], None] | None = None
        """Told each action's name and seconds to its reply (metrics)."""

    def _connection_lost(self) -> None:
        self._lost.set()
        self.connected.clear()
        # panoramisk drops "forgetable" actions on a disconnect without ever
        # resolving them: fail every reply we are still waiting for.
        for future in self._inflight:
            if not future.done():
                future.set_exception(AmiNotConnected("connection lost before the reply"))
        self._inflight.clear()

    def on_login(self, callback: OnLogin) -> None:
        """Run `callback` after every successful login (first connect and each reconnect)."""
        self._on_login.append(callback)

    # -- connection --------------------------------------------------------

    async def connect_once(self, stopping: asyncio.Event | None = None) -> None:
        """Open a connection, log in and wait for FullyBooted, or raise an AmiError saying why not."""
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._booted = asyncio.Event()
        secret = self.server.resolve_secret()
        # panoramisk writes the Login action itself, past `action()`'s check.
        for what, value in (("username", self.server.username), ("secret", secret)):
            if problem_in_header_value(value) is not None:
                raise AmiLoginFailed(f"the AMI {what} cannot be sent: {problem_in_header_value(value)}")
        manager = _Manager(
            on_lost=self._connection_lost,
            loop=loop,
            host=self.server.host,
            port=self.server.port,
            username=self.server.username,
            secret=secret,
            forgetable_actions=("ping", "login", "originate"),
        )
        manager.register_event("*", self._on_event)
        try:
            transport_and_protocol = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.server.host, self.server.port),
                self.server.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise AmiNotConnected(
                f"cannot reach AMI at {self.server.host}:{self.server.port}: {exc or 'timeout'}"
            ) from exc
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result(transport_and_protocol)
        manager.connection_made(done)
        login = manager.authenticated_future
        try:
            reply = await asyncio.wait_for(asyncio.shield(login), self.server.action_timeout)
        except (asyncio.TimeoutError, AmiNotConnected) as exc:
            manager.close()
            raise AmiNotConnected("no reply to the AMI login") from exc
        if not reply.success:
            manager.close()
            raise AmiLoginFailed(
                f"Asterisk refused the login of user {self.server.username!r}: {reply.get('Message', 'no reason given')}"
            )
        try:
            await wait_booted(self._booted, self._lost, stopping, self.where, self.boot_timeout)
        except AmiError:
            manager.close()
            raise
        self._manager = manager
        self.connected.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep a logged-in connection until `stopping` is set."""
        await supervise(self, stopping)

    async def after_login(self) -> None:
        for callback in self._on_login:
            await callback()

    def end_session(self) -> None:
        # The loss first: closing the manager first would hide it from us.
        self._connection_lost()
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    async def watch(self, stopping: asyncio.Event) -> None:
        await ping_until_lost(self, stopping, self._lost, self.server.ping_interval)

    async def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        self.connected.clear()

    # -- actions ------------------------------------------------------------

    async def action(
        self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None
    ) -> Message | list[Message]:
        name = str(fields.get("Action", "?"))
        # The last guard: whatever a caller let through, nothing is written.
        problems = problems_in_fields(fields)
        if problems:
            log.error("ami.unsafe_value_refused", action=name[:40], problems=problems)
            raise AmiUnsafeValue(name[:40], problems)
        manager = self._manager
        if manager is None or not self.connected.is_set():
            raise AmiNotConnected("not logged in to AMI")
        future = manager.send_action(dict(fields), as_list=as_list)
        self._inflight.add(future)
        sent = time.perf_counter()
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), timeout or self.server.action_timeout)
        except asyncio.TimeoutError as exc:
            raise AmiTimeout(f"{name}: no reply within {timeout or self.server.action_timeout} s") from exc
        finally:
            self._inflight.discard(future)
        if self.on_action is not None:
            self.on_action(name, time.perf_counter() - sent)
        first = reply[0] if isinstance(reply, list) else reply
        if first.get("Response", "").lower() == "error":
            raise AmiActionFailed(name, first.get("Message", "error"))
        return reply

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
        """Queue an async Originate whose ActionID and ChannelId are the attempt id (one
        server: `beside`, the agent whose server must carry it, is this one)."""
        await self.action(
            originate_action(
                attempt_id=attempt_id,
                channel=channel,
                context=context,
                exten=exten,
                timeout_ms=timeout_ms,
                caller_id=caller_id,
                variables=variables,
            )
        )

    # -- events ---------------------------------------------------------------

    def _on_event(self, _manager: Manager, event: Message) -> None:
        name = event.get("Event", "").lower()
        if name == "fullybooted":
            self._booted.set()
        if self._wanted is not None and name not in self._wanted:
            return
        self.events.put_nowait((dict(event), self._clock()))


async def _sleep_or_stop(stopping: asyncio.Event, delay: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), delay)
    except asyncio.TimeoutError:
        pass


async def _wait_any(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
