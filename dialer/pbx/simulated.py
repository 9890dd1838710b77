"""An Asterisk in memory: the `Pbx` the daemon talks to in tests and simulations.

It answers the actions the daemon sends (Originate, QueueAdd/Remove/Pause,
QueueStatus, CoreShowChannels, UserEvent, Ping) and plays each call's AMI events
in the order and with the causes a real Asterisk 22 gives (the recordings in
tests/fixtures/ami, docs in the stack facts): a busy customer is Reason 0 with
Cause 17 on the Hangup, an answered one is bridged to the longest-idle free
agent of its queue, a customer no agent takes hears the abandon message.
Customers behave as a scenario says (`Customer` per number).

Time is the running loop's only (call_later / sleep) and chance is the
`random.Random` it is given: on a virtual-clock loop a run is repeatable.
Faults are methods (`restart`, `drop_connection`, `half_open`, ...), and what
happened is kept for checks (`dial_log`, `bridged`, `abandoned`, `counters`).
The connection is supervised by the gateway's own loop (`supervise`).

Not modelled: the IVR branch (FastAGI; a call with DIALER_IVR goes to its queue),
inbound calls, Local channels and monitoring (ChanSpy, ConfBridge), and the
events the daemon filters out (Newexten, VarSet, RTCP).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dialer.ami.errors import AmiActionFailed, AmiLoginFailed, AmiNotConnected, AmiTimeout, AmiUnsafeValue
from dialer.ami.gateway import (
    BOOT_TIMEOUT,
    AmiServer,
    QueueActions,
    originate_action,
    ping_until_lost,
    supervise,
    wait_booted,
)
from dialer.ami.values import problems_in_fields
from dialer.pbx.protocol import OnAction, OnLogin

# Q.850 causes and SIP statuses a carrier's final answer gives (stack facts).
_REFUSALS: dict[str, tuple[int, int, str, int]] = {
    # outcome: (Cause, TechCause, DialStatus, OriginateResponse Reason)
    "busy": (17, 486, "BUSY", 0),
    "no_answer": (19, 480, "NOANSWER", 3),
    "rejected": (21, 603, "NOANSWER", 0),
    "congestion": (34, 503, "CONGESTION", 8),
    "not_found": (1, 404, "NOANSWER", 0),
}
_RINGS_FIRST = {"answer", "machine", "no_answer", "rejected"}
OUTCOMES = frozenset({"answer", "machine", *_REFUSALS})

_STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
# Queue member (device) states as QueueMemberStatus gives them.
_NOT_INUSE, _INUSE, _UNAVAILABLE, _RINGING = 1, 2, 5, 6
_SHUTDOWN = 4  # AST_SOFTHANGUP_SHUTDOWN
_NORMAL = 16


@dataclass(frozen=True)
class Customer:
    """What one number does when it is called."""

    outcome: str = "answer"
    """answer, machine, busy, no_answer, rejected, congestion or not_found."""
    after: float = 3.0
    """Seconds from the dial to the answer (or to the carrier's refusal)."""
    talk: float = 30.0
    """Seconds the customer talks once bridged, then hangs up."""
    patience: float | None = None
    """Hangs up after this many seconds waiting for an agent (None: waits for the dialplan)."""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown customer outcome {self.outcome!r}; one of {sorted(OUTCOMES)}")


Scenario = Callable[[str], Customer] | Mapping[str, Customer]


@dataclass(frozen=True)
class Dialed:
    at: float
    number: str
    attempt_id: str


@dataclass
class Bridged:
    attempt_id: str
    start: float
    end: float | None = None


@dataclass(frozen=True)
class Abandoned:
    attempt_id: str
    queue: str
    waited: float
    heard_message: bool
    """The dialplan played the abandon message (False: the customer hung up first)."""


@dataclass
class _Member:
    interface: str
    name: str
    penalty: int
    paused: bool = False


@dataclass
class _Phone:
    interface: str
    answer_after: float | None  # None: never picks up
    registered: bool = True
    call: _Call | None = None  # ringing or bridged with this call
    idle_since: float = 0.0  # loop time, for the longest-idle strategy
    last_call: float = 0.0  # the clock's time, for QueueStatus' LastCall


@dataclass
class _Leg:
    channel: str
    uniqueid: str
    state: int = 0
    application: str = ""
    bridge: str = ""


@dataclass
class _Call:
    attempt_id: str
    number: str
    customer: Customer
    variables: dict[str, str]
    leg: _Leg
    caller_id: str
    originate_channel: str
    phase: str = "queued_for_dial"  # then dialing, amd, queued, ringing_agent, bridged, message, done
    answered_at: float | None = None
    queue: str = ""
    joined_at: float = 0.0
    waited: float = 0.0
    agent: _Phone | None = None
    agent_leg: _Leg | None = None
    direct: bool = False
    tried: set[str] = field(default_factory=set)  # members that rang out in this round
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def priority(self) -> int:
        try:
            return int(self.variables.get("DIALER_PRIORITY") or 0)
        except ValueError:
            return 0


def _number_and_endpoint(channel: str) -> tuple[str, str]:
    """`PJSIP/15550001@carrier` -> ("15550001", "carrier")."""
    resource = channel.split("/", 1)[-1]
    number, _, endpoint = resource.partition("@")
    return number, endpoint or number


class SimulatedPbx(QueueActions):
    def __init__(
        self,
        rng: random.Random,
        scenario: Scenario,
        *,
        agents: Mapping[str, float | None] | Iterable[str] = (),
        queues: Iterable[str] = ("sales", "support", "retention", "key-accounts"),
        clock: Callable[[], float] | None = None,
        wanted_events: frozenset[str] | None = None,
        action_timeout: float = 10.0,
        ping_interval: float = 10.0,
        queue_retry: float = 1.0,
        member_timeout: float = 15.0,
        abandon_message_seconds: float = 4.0,
        amd_seconds: tuple[float, float] = (2.0, 3.5),
        machine_message_seconds: tuple[float, float] = (3.0, 6.0),
        system_name: str = "sim",
        boot_seconds: float = 1.0,
    ) -> None:
        """`agents`: interface -> seconds the phone takes to answer, None if it never does (or just
        interfaces: 0.5 s). `queue_retry` and `member_timeout` are queues.conf's `retry` and `timeout`.
        `boot_seconds`: after a restart, how long AMI takes logins before the modules are loaded."""
        self.rng = rng
        self.scenario = scenario
        self.events: asyncio.Queue[tuple[dict[str, str], float]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.last_error: str | None = None
        self.on_action: OnAction | None = None
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.queue_retry = queue_retry
        self.member_timeout = member_timeout
        self.abandon_message_seconds = abandon_message_seconds
        self.amd_seconds = amd_seconds
        """AMD() listens this long (uniform between the two) before its verdict."""
        self.machine_message_seconds = machine_message_seconds
        self.system_name = system_name
        self.where = f"simulated PBX {system_name}"
        self._clock = clock
        self._wanted = wanted_events
        self._on_login: list[OnLogin] = []
        answer_times = agents if isinstance(agents, Mapping) else {a: 0.5 for a in agents}
        self.phones = {i: _Phone(i, None if t is None else float(t)) for i, t in answer_times.items()}
        self.queues: dict[str, dict[str, _Member]] = {q: {} for q in queues}
        self._calls: dict[str, _Call] = {}
        self._channel_seq = 0
        self._agent_seq = 0
        self._bridge_seq = 0
        # The PBX runs (`_up`), a TCP connection is open (`_link`), replies flow (not half-open).
        self._up = True
        self._link = False
        self._half_open_until = 0.0
        self._lost = asyncio.Event()
        self._inflight: set[asyncio.Future[Any]] = set()
        self._shutting_down = False
        self.boot_seconds = boot_seconds
        self.boot_timeout = BOOT_TIMEOUT
        self.booted = asyncio.Event()
        self.booted.set()
        """Fully booted: app_queue answers, FullyBooted is said at each login."""
        self.reply_delay = 0.0
        """Seconds before each reply (`slow_replies`)."""
        self.login_refused = False
        """While True, every login is refused (a wrong secret)."""
        self._refuse_originates = 0
        self.refusal: Callable[[str], str | None] | None = None
        """Number -> the error Asterisk answers its Originate with (a trunk or endpoint it
        cannot use), None to accept: a fault by number where `refuse_originates` counts."""
        # Observation for invariants.
        self.actions: list[dict[str, Any]] = []
        """Every action received, as sent (an Originate's `Variable` list included)."""
        self.originated: list[dict[str, Any]] = []
        """The arguments of every `originate()` call, refused ones included."""
        self.dial_log: list[Dialed] = []
        """Every call that reached the carrier."""
        self.bridged: dict[str, list[Bridged]] = {}
        """Per agent interface, each interval it was bridged to a customer."""
        self.abandoned: list[Abandoned] = []
        self.counters: Counter[str] = Counter()
        self.event_filter: set[str] = set()
        """Event names the session asked for (AMI `Filter`, `name(...)`); empty: every event."""

    def attach(self, server: AmiServer, clock: Callable[[], float]) -> SimulatedPbx:
        """The daemon's `pbx_factory`: take its clock and its AMI timeouts."""
        self._clock = clock
        self.action_timeout = server.action_timeout
        self.ping_interval = server.ping_interval
        return self

    # -- time -------------------------------------------------------------------------

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _now(self) -> float:
        return self._loop.time()

    def _stamp(self) -> float:
        return self._clock() if self._clock is not None else self._now()

    def _later(self, call: _Call | None, delay: float, fn: Callable[..., None], *args: Any) -> None:
        handle = self._loop.call_later(max(0.0, delay), fn, *args)
        if call is not None:
            call.timers.append(handle)

    def _jitter(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high)

    # -- connection -------------------------------------------------------------------

    def on_login(self, callback: OnLogin) -> None:
        self._on_login.append(callback)

    def _half_open(self) -> bool:
        return self._half_open_until > self._now()

    def logged_in(self, members: Iterable[tuple[str, str, str, int]] = ()) -> SimulatedPbx:
        """Start mid-session: connected, with (queue, interface, name, penalty) members already in (no events)."""
        self._lost = asyncio.Event()
        self._link = True
        self.connected.set()
        for queue, interface, name, penalty in members:
            self.queues.setdefault(queue, {})[interface] = _Member(interface, name, penalty)
            self._phone(interface)
        return self

    async def connect_once(self, stopping: asyncio.Event | None = None) -> None:
        await asyncio.sleep(0)
        if not self._up:
            raise AmiNotConnected("cannot reach AMI: connection refused")
        if self._half_open():
            await asyncio.sleep(min(self.action_timeout, self._half_open_until - self._now()))
            raise AmiNotConnected("no reply to the AMI login")
        if self.login_refused:
            raise AmiLoginFailed("Asterisk refused the login of user 'dialer': Authentication failed")
        self._lost = asyncio.Event()
        self._link = True
        self.event_filter.clear()  # a session's filters die with it
        self.counters["logins"] += 1
        if self.booted.is_set():
            self._fully_booted_event()
        try:
            await wait_booted(self.booted, self._lost, stopping, self.where, self.boot_timeout)
        except AmiNotConnected:
            self._connection_lost()
            raise
        self.connected.set()

    def _fully_booted_event(self) -> None:
        self._emit({"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "1", "LastReload": "1",
                    "Status": "Fully Booted"})

    async def run(self, stopping: asyncio.Event) -> None:
        """The gateway's own supervision (`supervise`): the same reconnect policy is what runs here."""
        await supervise(self, stopping, self.rng)

    async def after_login(self) -> None:
        for callback in self._on_login:
            await callback()

    async def watch(self, stopping: asyncio.Event) -> None:
        await ping_until_lost(self, stopping, self._lost, self.ping_interval)

    def end_session(self) -> None:
        self._connection_lost()

    def _connection_lost(self) -> None:
        self._link = False
        self._lost.set()
        self.connected.clear()
        for future in self._inflight:
            if not future.done():
                future.set_exception(AmiNotConnected("connection lost before the reply"))
        self._inflight.clear()

    async def close(self) -> None:
        self._link = False
        self.connected.clear()

    # -- actions ----------------------------------------------------------------------

    async def action(
        self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None
    ) -> Any:
        name = str(fields.get("Action", "?"))
        problems = problems_in_fields(fields)
        if problems:
            raise AmiUnsafeValue(name[:40], problems)
        if not self.connected.is_set():
            raise AmiNotConnected("not logged in to AMI")
        self.actions.append(dict(fields))
        sent = self._now()
        future: asyncio.Future[Any] = self._loop.create_future()
        self._inflight.add(future)
        if not self._half_open():
            # Reply computed now (Asterisk acts on receipt), delivered after the delay.
            reply = self._answer(name.lower(), fields)
            self._later(None, self.reply_delay, _resolve, future, reply)
        limit = timeout or self.action_timeout
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError as exc:
            raise AmiTimeout(f"{name}: no reply within {limit} s") from exc
        finally:
            self._inflight.discard(future)
        if self.on_action is not None:
            self.on_action(name, self._now() - sent)
        first = reply[0] if isinstance(reply, list) else reply
        if first.get("Response", "").lower() == "error":
            raise AmiActionFailed(name, first.get("Message", "error"))
        if as_list and not isinstance(reply, list):
            return [reply]
        return reply

    def _answer(self, name: str, fields: Mapping[str, Any]) -> dict[str, str] | list[dict[str, str]]:
        self.counters[f"action.{name}"] += 1
        get = {k.lower(): v for k, v in fields.items()}
        if name.startswith("queue") and not self.booted.is_set():
            self.counters["refused_not_booted"] += 1
            return {"Response": "Error", "Message": "Invalid/unknown command"}  # app_queue not loaded yet
        match name:
            case "ping":
                return {"Response": "Success", "Ping": "Pong"}
            case "originate":
                return self._originate_action(get)
            case "queueadd":
                return self._queue_add(str(get.get("queue", "")), str(get.get("interface", "")),
                                       str(get.get("membername", "")), int(get.get("penalty") or 0))
            case "queueremove":
                return self._queue_remove(str(get.get("queue", "")), str(get.get("interface", "")))
            case "queuepause":
                return self._queue_pause(str(get.get("interface", "")), str(get.get("paused", "")),
                                         str(get.get("queue", "") or ""))
            case "queuestatus":
                return self._queue_status(str(get.get("queue", "") or ""))
            case "coreshowchannels":
                return self._core_show_channels()
            case "filter":
                return self._filter(str(get.get("operation", "")), str(get.get("matchcriteria", "")))
            case "userevent":
                self._emit({"Event": "UserEvent", **{k: str(v) for k, v in fields.items() if k != "Action"}})
                return {"Response": "Success"}
        return {"Response": "Error", "Message": "Invalid/unknown command"}

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
        self.originated.append({"at": self._stamp(), "attempt_id": attempt_id, "channel": channel, "context": context, "exten": exten,
                                "timeout_ms": timeout_ms, "caller_id": caller_id, "variables": dict(variables)})
        # The gateway's own Originate, checked as it checks it: a bad value is refused here too.
        await self.action(
            originate_action(
                attempt_id=attempt_id, channel=channel, context=context, exten=exten,
                timeout_ms=timeout_ms, caller_id=caller_id, variables=variables,
            )
        )

    # -- faults -----------------------------------------------------------------------

    def refuse_originates(self, count: int) -> None:
        """The next `count` Originates get an Error reply (nobody is called)."""
        self._refuse_originates = count

    def slow_replies(self, seconds: float) -> None:
        self.reply_delay = seconds

    def drop_connection(self) -> None:
        """The TCP connection breaks; Asterisk and its calls go on, events meanwhile are lost."""
        self.counters["drops"] += 1
        self._connection_lost()

    def half_open(self, seconds: float) -> None:
        """For `seconds`, actions are taken but never answered and no event arrives."""
        self.counters["half_opens"] += 1
        self._half_open_until = self._now() + seconds

    def restart(self, down_for: float = 2.0) -> None:
        """`core restart now`: every channel hung up, `Shutdown` ~1.1 s later, AMI back after `down_for`,
        fully booted (`FullyBooted`; app_queue answers) `boot_seconds` after that."""
        self.counters["restarts"] += 1
        self._shutting_down = True
        calls = [c for c in self._calls.values() if c.phase != "done"]
        for call in calls:
            for timer in call.timers:
                timer.cancel()
            call.timers.clear()
        # Per call in Asterisk's order; every Hangup after all the rest, as recorded.
        hangups = [h for call in calls for h in self._cut(call)]
        for call, leg, cause in hangups:
            self._hangup(call, leg, cause)
        for call in calls:
            if call.agent is not None:
                self._free_agent(call, call.agent)
            self._done(call)
        for phone in self.phones.values():
            phone.call = None
        for members in self.queues.values():
            members.clear()  # persistentmembers = no: the daemon adds its agents again
        self._later(None, 1.1, self._shutdown, down_for)

    def _shutdown(self, down_for: float) -> None:
        self._emit({"Event": "Shutdown", "Privilege": "system,all", "Shutdown": "Cleanly", "Restart": "True"})
        self._up = False
        self.booted.clear()
        self._connection_lost()
        self._later(None, down_for, self._boot)

    def _boot(self) -> None:
        """AMI takes logins again; the modules (app_queue) are loaded `boot_seconds` later."""
        self._up = True
        self._shutting_down = False
        self._channel_seq = 0
        self._later(None, self.boot_seconds, self._fully_booted)

    def _fully_booted(self) -> None:
        if self._up and not self.booted.is_set():
            self.booted.set()
            self._fully_booted_event()

    def agent_logout(self, interface: str) -> None:
        """The agent's phone unregisters: unavailable in every queue, never rung."""
        self._set_registered(interface, False)

    def agent_login(self, interface: str) -> None:
        self._set_registered(interface, True)

    def _set_registered(self, interface: str, registered: bool) -> None:
        phone = self._phone(interface)
        phone.registered = registered
        self._member_status(interface)
        if registered:
            self._dispatch_soon()

    # -- queues -----------------------------------------------------------------------

    def _phone(self, interface: str) -> _Phone:
        if interface not in self.phones:
            self.phones[interface] = _Phone(interface, 0.5)
        return self.phones[interface]

    def _status_of(self, interface: str) -> int:
        phone = self._phone(interface)
        if not phone.registered:
            return _UNAVAILABLE
        if phone.call is None:
            return _NOT_INUSE
        return _INUSE if phone.call.phase == "bridged" else _RINGING

    def _member_fields(self, queue: str, member: _Member) -> dict[str, str]:
        phone = self._phone(member.interface)
        in_call = phone.call is not None and phone.call.phase == "bridged"
        return {
            "Queue": queue,
            "MemberName": member.name,
            "Interface": member.interface,
            "StateInterface": member.interface,
            "Membership": "dynamic",
            "Penalty": str(member.penalty),
            "CallsTaken": str(len(self.bridged.get(member.interface, []))),
            "LastCall": str(int(phone.last_call)),
            "InCall": "1" if in_call else "0",
            "Status": str(self._status_of(member.interface)),
            "Paused": "1" if member.paused else "0",
            "PausedReason": "",
            "Wrapuptime": "0",
        }

    def _member_status(self, interface: str) -> None:
        for queue, members in self.queues.items():
            if interface in members:
                self._emit({"Event": "QueueMemberStatus", **self._member_fields(queue, members[interface])})

    def _queue_add(self, queue: str, interface: str, name: str, penalty: int) -> dict[str, str]:
        if queue not in self.queues:
            return {"Response": "Error", "Message": "Unable to add interface to queue: No such queue"}
        if interface in self.queues[queue]:
            return {"Response": "Error", "Message": "Unable to add interface: Already there"}
        member = _Member(interface, name or interface, penalty)
        self.queues[queue][interface] = member
        self._emit({"Event": "QueueMemberAdded", **self._member_fields(queue, member)})
        self._dispatch_soon()
        return {"Response": "Success", "Message": "Added interface to queue"}

    def _queue_remove(self, queue: str, interface: str) -> dict[str, str]:
        if queue not in self.queues:
            return {"Response": "Error", "Message": "Unable to remove interface from queue: No such queue"}
        member = self.queues[queue].pop(interface, None)
        if member is None:
            return {"Response": "Error", "Message": "Unable to remove interface: Not there"}
        self._emit({"Event": "QueueMemberRemoved", **self._member_fields(queue, member)})
        return {"Response": "Success", "Message": "Removed interface from queue"}

    def _queue_pause(self, interface: str, paused: str, queue: str) -> dict[str, str]:
        flag = paused.strip().lower() in {"1", "true", "yes"}
        found = False
        for name, members in self.queues.items():
            if interface in members and (not queue or queue == name):
                found = True
                members[interface].paused = flag
                self._emit({"Event": "QueueMemberPause", **self._member_fields(name, members[interface])})
        if not found:
            return {"Response": "Error", "Message": "Interface not found"}
        if not flag:
            self._dispatch_soon()
        message = "Interface paused successfully" if flag else "Interface unpaused successfully"
        return {"Response": "Success", "Message": message}

    def _queue_status(self, queue: str) -> list[dict[str, str]]:
        if queue and queue not in self.queues:
            return [{"Response": "Error", "Message": "No such queue"}]
        reply: list[dict[str, str]] = [
            {"Response": "Success", "EventList": "start", "Message": "Queue status will follow"}
        ]
        count = 0
        for name in [queue] if queue else list(self.queues):
            waiting = [c for c in self._calls.values() if c.queue == name and c.phase in ("queued", "ringing_agent")]
            reply.append({"Event": "QueueParams", "Queue": name, "Max": "0", "Strategy": "leastrecent",
                          "Calls": str(len(waiting)), "Holdtime": "0", "TalkTime": "0", "Completed": "0",
                          "Abandoned": "0", "ServiceLevel": "0", "ServicelevelPerf": "0.0", "Weight": "0"})
            for member in self.queues[name].values():
                reply.append({"Event": "QueueMember", **self._member_fields(name, member)})
            count += 1 + len(self.queues[name])
        reply.append({"Event": "QueueStatusComplete", "EventList": "Complete", "ListItems": str(count)})
        return reply

    def _free_member(self, queue: str, tried: set[str]) -> _Phone | None:
        """The longest-idle member that is logged in, unpaused, registered, not on a call nor tried."""
        free = [
            self._phone(m.interface)
            for m in self.queues.get(queue, {}).values()
            if not m.paused and m.interface not in tried
            and self._phone(m.interface).registered and self._phone(m.interface).call is None
        ]
        if not free:
            return None
        return min(free, key=lambda p: (p.idle_since, p.interface))

    def _dispatch_soon(self) -> None:
        # A waiting caller's Queue() tries the members again every `retry` seconds: a phone
        # that comes free is rung somewhere within that time, not at once (stack facts).
        self._later(None, self._jitter(0.0, self.queue_retry), self._dispatch)

    def _dispatch(self) -> None:
        waiting = sorted(
            (c for c in self._calls.values() if c.phase == "queued"),
            key=lambda c: (-c.priority, c.joined_at, c.attempt_id),
        )
        for call in waiting:
            phone = self._free_member(call.queue, call.tried)
            if phone is not None:
                self._ring_agent(call, phone)

    # -- calls ------------------------------------------------------------------------

    def _originate_action(self, get: Mapping[str, Any]) -> dict[str, str]:
        if self._shutting_down or not self._up:
            return {"Response": "Error", "Message": "Asterisk is shutting down"}
        if self._refuse_originates > 0:
            self._refuse_originates -= 1
            self.counters["originates_refused"] += 1
            return {"Response": "Error", "Message": "Originate failed"}
        attempt_id = str(get.get("channelid") or get.get("actionid") or "")
        if not attempt_id or attempt_id in self._calls:
            return {"Response": "Error", "Message": "Originate failed: channel id in use"}
        raw_vars = get.get("variable") or []
        pairs = raw_vars if isinstance(raw_vars, list) else [raw_vars]
        variables = dict(str(p).split("=", 1) for p in pairs if "=" in str(p))
        originate_channel = str(get.get("channel", ""))
        number, endpoint = _number_and_endpoint(originate_channel)
        refused = self.refusal(number) if self.refusal is not None else None
        if refused:
            self.counters["originates_refused"] += 1
            return {"Response": "Error", "Message": refused}
        customer = self._customer(number)
        self._channel_seq += 1
        leg = _Leg(f"PJSIP/{endpoint}-{self._channel_seq:08x}", attempt_id)
        call = _Call(attempt_id, number, customer, variables, leg, str(get.get("callerid", "")), originate_channel)
        self._calls[attempt_id] = call
        self.counters["originates"] += 1
        timeout = int(get.get("timeout") or 30000) / 1000
        self._later(call, self._jitter(0.001, 0.01), self._dial, call, endpoint, timeout)
        return {"Response": "Success", "ActionID": str(get.get("actionid", "")),
                "Message": "Originate successfully queued"}

    def _customer(self, number: str) -> Customer:
        if callable(self.scenario):
            return self.scenario(number)
        return self.scenario.get(number, Customer("no_answer", after=3600.0))

    def _dial(self, call: _Call, endpoint: str, timeout: float) -> None:
        call.phase = "dialing"
        self.dial_log.append(Dialed(self._stamp(), call.number, call.attempt_id))
        self._channel_event("Newchannel", call.leg, call, {"Exten": call.number, "Context": "dialer-outbound"})
        self._emit({"Event": "DialBegin", **self._dest_fields(call.leg, call),
                    "DialString": f"{call.number}@{endpoint}"})
        outcome = call.customer.outcome
        if outcome in _RINGS_FIRST:
            self._later(call, min(self._jitter(0.05, 0.2), call.customer.after / 2), self._state, call, call.leg, 5)
        after = call.customer.after
        if after >= timeout:
            self._later(call, timeout, self._originate_timeout, call)
        elif outcome in _REFUSALS:
            self._later(call, after, self._refused, call)
        else:
            self._later(call, after, self._answered, call)

    def _state(self, call: _Call, leg: _Leg, state: int) -> None:
        leg.state = state
        self._channel_event("Newstate", leg, call)

    def _refused(self, call: _Call) -> None:
        cause, tech, status, reason = _REFUSALS[call.customer.outcome]
        self._channel_event("HangupRequest", call.leg, call, {"Cause": str(cause), "TechCause": str(tech)})
        self._emit({"Event": "DialEnd", **self._dest_fields(call.leg, call), "DialStatus": status})
        self._hangup(call, call.leg, cause)
        self._originate_response(call, False, reason)
        self._done(call)

    def _originate_timeout(self, call: _Call) -> None:
        # Asterisk gives up on its own: no final answer from the far end, the reason says why.
        self._emit({"Event": "DialEnd", **self._dest_fields(call.leg, call), "DialStatus": "NOANSWER"})
        self._hangup(call, call.leg, 0)
        self._originate_response(call, False, 3)
        self._done(call)

    def _answered(self, call: _Call) -> None:
        call.answered_at = self._now()
        self._state(call, call.leg, 6)
        self._emit({"Event": "DialEnd", **self._dest_fields(call.leg, call), "DialStatus": "ANSWER"})
        self.counters["answered"] += 1
        if call.variables.get("DIALER_AMD") == "1":
            call.phase = "amd"
            call.leg.application = "AMD"
            self._later(call, self._jitter(*self.amd_seconds), self._amd, call)
        else:
            self._route(call)
        # After the dialplan's first steps, as Asterisk reports it (even after AgentCalled).
        self._originate_response(call, True, 4)

    def _amd(self, call: _Call) -> None:
        machine = call.customer.outcome == "machine"
        status, cause = ("MACHINE", "LONGGREETING-2000-2000") if machine else ("HUMAN", "HUMAN-300-300")
        self._user_event(call, "DialerAmd", {"Status": status, "Cause": cause})
        if not machine:
            self._route(call)
            return
        action = call.variables.get("DIALER_ON_MACHINE", "hangup")
        self._user_event(call, "DialerMachine", {"Action": action})
        message = action == "leave_message" and bool(call.variables.get("DIALER_MACHINE_MSG"))
        call.phase = "message"
        self._later(call, self._jitter(*self.machine_message_seconds) if message else 0.01, self._end_alone, call)

    def _route(self, call: _Call) -> None:
        agent = call.variables.get("DIALER_AGENT", "")
        if agent:
            phone = self._phone(agent)
            if phone.registered and phone.call is None:
                call.direct = True
                self._ring_agent(call, phone)
                return
        self._join(call, call.variables.get("DIALER_QUEUE", ""))

    def _join(self, call: _Call, queue: str) -> None:
        call.phase = "queued"
        call.queue = queue
        call.joined_at = self._now()
        call.leg.application = "Queue"
        if queue not in self.queues:
            # Queue() never ran: QUEUESTATUS is empty, the dialplan's abandon branch.
            self._abandon_message(call, "NOQUEUE")
            return
        position = sum(1 for c in self._calls.values() if c.queue == queue and c.phase == "queued")
        self._channel_event("QueueCallerJoin", call.leg, call,
                            {"Queue": queue, "Position": str(position), "Count": str(position)})
        wait = _seconds(call.variables.get("DIALER_AGENT_WAIT"), 15.0)
        self._later(call, wait, self._queue_timeout, call)
        if call.customer.patience is not None:
            self._later(call, max(0.0, call.customer.patience - call.waited), self._caller_gives_up, call)
        self._dispatch()

    def _leave_queue(self, call: _Call, *, abandon: bool) -> None:
        call.waited += self._now() - call.joined_at
        queue = {"Queue": call.queue, "Position": "1", "Count": "0"}
        if abandon:
            self._channel_event("QueueCallerAbandon", call.leg, call,
                                {**queue, "OriginalPosition": "1", "HoldTime": str(int(call.waited))})
        self._channel_event("QueueCallerLeave", call.leg, call, queue)

    def _queue_timeout(self, call: _Call) -> None:
        if call.phase == "ringing_agent":
            self._cancel_agent(call)
        if call.phase != "queued":
            return
        self._cancel_timers(call)
        self._leave_queue(call, abandon=True)
        fallback = call.variables.pop("DIALER_FALLBACK_QUEUE", "")
        if fallback:
            self._user_event(call, "DialerFallback", {"From": call.queue, "To": fallback, "Reason": "TIMEOUT"})
            call.variables["DIALER_PRIORITY"] = call.variables.get("DIALER_FALLBACK_PRIORITY", "0")
            call.variables["DIALER_AGENT_WAIT"] = call.variables.get("DIALER_FALLBACK_WAIT", "15")
            call.variables["DIALER_QUEUE"] = fallback
            self._join(call, fallback)
            return
        self._abandon_message(call, "TIMEOUT")

    def _abandon_message(self, call: _Call, reason: str) -> None:
        self._user_event(call, "DialerAbandoned", {"Queue": call.queue, "Reason": reason})
        message = bool(call.variables.get("DIALER_ABANDON_MSG"))
        self.abandoned.append(Abandoned(call.attempt_id, call.queue, call.waited, message))
        call.phase = "message"
        call.leg.application = "Playback" if message else "Hangup"
        self._later(call, self.abandon_message_seconds if message else 0.01, self._end_alone, call)

    def _caller_gives_up(self, call: _Call) -> None:
        if call.phase == "ringing_agent":
            self._cancel_agent(call)
        if call.phase != "queued":
            return
        self._cancel_timers(call)
        self._leave_queue(call, abandon=True)
        self.abandoned.append(Abandoned(call.attempt_id, call.queue, call.waited, False))
        self._channel_event("HangupRequest", call.leg, call)
        self._hangup(call, call.leg, _NORMAL)
        self._done(call)

    def _end_alone(self, call: _Call) -> None:
        """The dialplan hangs up a customer no agent has (after a message, a machine)."""
        self._hangup(call, call.leg, _NORMAL)
        self._done(call)

    def _ring_agent(self, call: _Call, phone: _Phone) -> None:
        call.phase = "ringing_agent"
        call.agent = phone
        phone.call = call
        self._agent_seq += 1
        uniqueid = f"{self.system_name}-{int(self._stamp())}.{self._agent_seq}"  # Asterisk's own form
        leg = _Leg(f"{phone.interface}-{self._agent_seq:08x}", uniqueid)
        call.agent_leg = leg
        self._channel_event("Newchannel", leg, call, {"Exten": "s", "Context": "default"})
        if not call.direct:
            self._channel_event("AgentCalled", call.leg, call,
                                {**self._dest_fields(leg, call), **self._member_of(call, phone)})
        self._emit({**self._channel_fields(call.leg, call), "Event": "DialBegin", **self._dest_fields(leg, call),
                    "DialString": phone.interface.split("/", 1)[-1]})
        self._state(call, leg, 5)
        self._member_status(phone.interface)
        limit = _seconds(call.variables.get("DIALER_AGENT_WAIT"), 15.0) if call.direct else self.member_timeout
        if phone.answer_after is None or phone.answer_after >= limit:
            self._later(call, limit, self._agent_no_answer, call)
        else:
            self._later(call, phone.answer_after, self._agent_answers, call)

    def _agent_no_answer(self, call: _Call) -> None:
        """The agent's phone rang out: the queue tries again, a direct callback goes to the queue."""
        phone, leg = call.agent, call.agent_leg
        assert phone is not None and leg is not None
        if not call.direct:
            self._channel_event("AgentRingNoAnswer", call.leg, call, {
                **self._dest_fields(leg, call), **self._member_of(call, phone),
                "RingTime": str(int(self.member_timeout)),
            })
        self._agent_dial_end(call, leg, "NOANSWER")
        self._hangup(call, leg, _NORMAL)
        phone.call = None
        call.agent = call.agent_leg = None
        self._member_status(phone.interface)
        self.counters["agent_no_answer"] += 1
        if call.direct:
            call.direct = False
            self._join(call, call.variables.get("DIALER_QUEUE", ""))
            return
        # The next member at once; when each has rung out, the whole round again after `retry`.
        call.phase = "queued"
        call.tried.add(phone.interface)
        self._dispatch()
        if call.phase == "queued":
            call.tried.clear()
            self._later(call, self.queue_retry, self._dispatch)

    def _member_of(self, call: _Call, phone: _Phone) -> dict[str, str]:
        member = self.queues.get(call.queue, {}).get(phone.interface)
        name = member.name if member else phone.interface
        return {"Queue": call.queue, "Interface": phone.interface, "MemberName": name}

    def _agent_dial_end(self, call: _Call, leg: _Leg, status: str) -> None:
        """The end of Queue()'s (or Dial()'s) ringing of the agent's phone."""
        self._emit({**self._channel_fields(call.leg, call), "Event": "DialEnd", **self._dest_fields(leg, call),
                    "DialStatus": status})

    def _cancel_agent(self, call: _Call) -> None:
        """The agent's phone stops ringing (the customer left, or the queue gave up)."""
        phone, leg = call.agent, call.agent_leg
        if phone is None or leg is None:
            return
        self._agent_dial_end(call, leg, "CANCEL")
        self._hangup(call, leg, _NORMAL)
        phone.call = None
        call.agent = call.agent_leg = None
        call.phase = "queued"
        self._member_status(phone.interface)

    def _agent_answers(self, call: _Call) -> None:
        phone, leg = call.agent, call.agent_leg
        assert phone is not None and leg is not None
        self._state(call, leg, 6)
        self._agent_dial_end(call, leg, "ANSWER")
        if call.direct:
            self._user_event(call, "DialerAgentConnect", {"Interface": phone.interface}, leg=leg)
        else:
            self._cancel_timers(call)
            self._leave_queue(call, abandon=False)
            self._channel_event("AgentConnect", call.leg, call, {
                **self._dest_fields(leg, call), **self._member_of(call, phone),
                "HoldTime": str(int(call.waited)), "RingTime": str(int(phone.answer_after or 0)),
            })
        call.phase = "bridged"
        self._bridge_seq += 1
        bridge = f"{self._bridge_seq:08x}-sim-bridge"
        for each in (call.leg, leg):
            each.bridge = bridge
            each.application = "AppQueue" if each is leg else "Queue"
            self._channel_event("BridgeEnter", each, call, {"BridgeUniqueid": bridge, "BridgeType": "basic"})
        self.bridged.setdefault(phone.interface, []).append(Bridged(call.attempt_id, self._stamp()))
        self._member_status(phone.interface)
        self._later(call, call.customer.talk, self._customer_hangs_up, call)

    def _customer_hangs_up(self, call: _Call) -> None:
        phone, leg = call.agent, call.agent_leg
        assert phone is not None and leg is not None
        self._channel_event("HangupRequest", call.leg, call)
        if not call.direct:
            self._channel_event("AgentComplete", call.leg, call, {
                **self._dest_fields(leg, call), **self._member_of(call, phone),
                "HoldTime": str(int(call.waited)), "TalkTime": str(int(call.customer.talk)), "Reason": "caller",
            })
        self._hangup(call, leg, _NORMAL)
        self._hangup(call, call.leg, _NORMAL)
        self._free_agent(call, phone)
        self._done(call)

    def _free_agent(self, call: _Call, phone: _Phone) -> None:
        intervals = self.bridged.get(phone.interface, [])
        if intervals and intervals[-1].attempt_id == call.attempt_id and intervals[-1].end is None:
            intervals[-1].end = self._stamp()
        phone.call = None
        phone.idle_since = self._now()
        phone.last_call = self._stamp()
        self._member_status(phone.interface)
        self._dispatch_soon()

    def _cut(self, call: _Call) -> list[tuple[_Call, _Leg, int]]:
        """A restart's events for `call` but its Hangups, which it returns (recorded order)."""
        phone, leg = call.agent, call.agent_leg
        shutdown = {"Cause": str(_SHUTDOWN)}
        hangups: list[tuple[_Call, _Leg, int]] = []
        if call.phase == "queued_for_dial":
            # Accepted but no channel made yet: it fails with no channel to hang up.
            self._originate_response(call, False, 0)
            return []
        if call.phase == "dialing":
            self._originate_response(call, False, 0)
            self._channel_event("SoftHangupRequest", call.leg, call, shutdown)
            self._emit({"Event": "DialEnd", **self._dest_fields(call.leg, call), "DialStatus": "NOANSWER"})
            return [(call, call.leg, 0)]
        if leg is not None:
            self._channel_event("SoftHangupRequest", leg, call, shutdown)
        if call.phase == "bridged":
            self._channel_event("SoftHangupRequest", call.leg, call, {"Cause": str(_NORMAL)})
            self._channel_event("SoftHangupRequest", call.leg, call, shutdown)
            if phone is not None and leg is not None and not call.direct:
                self._channel_event("AgentComplete", call.leg, call, {
                    **self._dest_fields(leg, call), **self._member_of(call, phone),
                    "HoldTime": str(int(call.waited)), "TalkTime": "0", "Reason": "agent",
                })
            if leg is not None:
                hangups.append((call, leg, _NORMAL))
            return [*hangups, (call, call.leg, _NORMAL)]
        self._channel_event("SoftHangupRequest", call.leg, call, shutdown)
        if call.phase in ("queued", "ringing_agent"):
            self._leave_queue(call, abandon=True)
            self._channel_event("SoftHangupRequest", call.leg, call, {"Cause": str(_NORMAL)})
            if leg is not None:
                hangups.append((call, leg, 0))
            # Still waiting: the customer never said anything, cause 0 (stack facts).
            return [*hangups, (call, call.leg, 0)]
        return [(call, call.leg, _NORMAL)]  # AMD, a message playing: answered calls end normally

    def _cancel_timers(self, call: _Call) -> None:
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()

    def _done(self, call: _Call) -> None:
        call.phase = "done"
        self._cancel_timers(call)
        self._calls.pop(call.attempt_id, None)

    def _originate_response(self, call: _Call, success: bool, reason: int) -> None:
        self._emit({
            "Event": "OriginateResponse", "ActionID": call.attempt_id,
            "Response": "Success" if success else "Failure", "Channel": call.originate_channel,
            "Context": "dialer-outbound", "Exten": "answered", "Application": "", "Data": "",
            "Reason": str(reason), "Uniqueid": call.attempt_id,
            "CallerIDNum": call.caller_id or "<unknown>", "CallerIDName": "<unknown>",
        })

    # -- CoreShowChannels ---------------------------------------------------------------

    def _core_show_channels(self) -> list[dict[str, str]]:
        reply: list[dict[str, str]] = [{"Response": "Success", "EventList": "start", "Message": "Channels will follow"}]
        for call in self._calls.values():
            for leg in (call.leg, call.agent_leg):
                if leg is None or call.phase == "queued_for_dial":
                    continue
                reply.append({
                    "Event": "CoreShowChannel", **self._channel_fields(leg, call),
                    "Application": leg.application or "AppDial", "ApplicationData": "",
                    "BridgeId": leg.bridge, "Duration": "00:00:01", "Context": "dialer-outbound",
                })
        reply.append({"Event": "CoreShowChannelsComplete", "EventList": "Complete", "ListItems": str(len(reply) - 1)})
        return reply

    # -- events -----------------------------------------------------------------------

    def _channel_fields(self, leg: _Leg, call: _Call) -> dict[str, str]:
        return {
            "Channel": leg.channel,
            "ChannelState": str(leg.state),
            "ChannelStateDesc": _STATE_DESC.get(leg.state, "Unknown"),
            "CallerIDNum": call.number if leg is call.leg else "",
            "Uniqueid": leg.uniqueid,
            "Linkedid": call.attempt_id,
        }

    def _dest_fields(self, leg: _Leg, call: _Call) -> dict[str, str]:
        return {f"Dest{k}": v for k, v in self._channel_fields(leg, call).items()}

    def _channel_event(self, name: str, leg: _Leg, call: _Call, extra: Mapping[str, str] | None = None) -> None:
        self._emit({"Event": name, **self._channel_fields(leg, call), **(extra or {})})

    def _user_event(self, call: _Call, kind: str, extra: Mapping[str, str], leg: _Leg | None = None) -> None:
        fields = {"Attempt": call.attempt_id, "Campaign": call.variables.get("DIALER_CAMPAIGN", ""), **extra}
        self._channel_event("UserEvent", leg or call.leg, call, {"UserEvent": kind, **fields})

    def _hangup(self, call: _Call, leg: _Leg, cause: int) -> None:
        text = {0: "Unknown", 1: "Unallocated (unassigned) number", 16: "Normal Clearing", 17: "User busy",
                19: "No user responding", 21: "Call Rejected", 34: "Circuit/channel congestion"}.get(cause, "Unknown")
        self._channel_event("Hangup", leg, call, {"Cause": str(cause), "Cause-txt": text})

    def _filter(self, operation: str, criteria: str) -> dict[str, str]:
        """Asterisk 22's Filter action, as far as the daemon uses it: include events by name."""
        name = re.fullmatch(r"(?:action\(include\),)?name\(([A-Za-z0-9_]+)\)", criteria)
        if operation.lower() != "add" or name is None:
            return {"Response": "Error", "Message": "Filter Not Added"}
        self.event_filter.add(name.group(1).lower())
        return {"Response": "Success", "Message": "Filter added successfully"}

    def _emit(self, event: dict[str, str]) -> None:
        self.counters[f"event.{event['Event']}"] += 1
        if not self._link or self._half_open():
            self.counters["events_lost"] += 1
            return
        if self.event_filter and event["Event"].lower() not in self.event_filter:
            self.counters["events_filtered"] += 1
            return
        if self._wanted is not None and event["Event"].lower() not in self._wanted:
            return
        self.events.put_nowait((event, self._stamp()))


def _seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _resolve(future: asyncio.Future[Any], reply: Any) -> None:
    if not future.done():
        future.set_result(reply)
