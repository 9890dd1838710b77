"""`dialer.ami.gateway.AmiGateway` against a tiny fake AMI server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import islice

import pytest

from dialer.ami.errors import AmiActionFailed, AmiLoginFailed, AmiNotConnected, AmiTimeout
from dialer.ami.events import SUBSCRIBED, WANTED
from dialer.ami.gateway import AmiGateway, _Protocol, backoff_delays, subscribe
from dialer.config.models import AmiServer

SECRET = "s3cret"
ATTEMPT = "1a2b3c4d5e6f40718293a4b5c6d7e8f9"


class FakeAmi:
    """Speaks just enough AMI: banner, Login, Ping, Originate; can stay silent or drop the line."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.silent: set[str] = set()  # lower-cased action names never answered
        self.logins = 0
        self.filter_right = False  # the user's `system` write, which the Filter action needs
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                try:
                    block = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                action: dict[str, str] = {}
                for line in block.decode().split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep:
                        action[key] = value
                self.received.append(action)
                self._arrived.set()
                self._answer(writer, action)
        finally:
            self._writers.remove(writer)
            writer.close()
            self._handlers.discard(asyncio.current_task())

    def _answer(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> None:
        name = action.get("Action", "").lower()
        if name in self.silent:
            return
        reply = {"Response": "Success", "ActionID": action.get("ActionID", "")}
        if name == "login":
            if action.get("Secret") == SECRET:
                self.logins += 1
                reply["Message"] = "Authentication accepted"
            else:
                reply.update(Response="Error", Message="Authentication failed")
        elif name == "ping":
            reply.update(Ping="Pong", Timestamp="1732350000.000000")
        elif name == "originate":
            reply["Message"] = "Originate successfully queued"
        elif name == "filter":
            if self.filter_right:
                reply["Message"] = "Filter added successfully"
            else:
                reply.update(Response="Error", Message="Permission denied")
        else:
            reply.update(Response="Error", Message="Invalid/unknown command")
        writer.write(_block(reply))
        if name == "login" and reply["Response"] == "Success":
            # Asterisk says FullyBooted after each login; panoramisk re-sends its awaiting actions on it.
            writer.write(_block({"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "12",
                                 "LastReload": "12", "Status": "Fully Booted"}))

    def send_event(self, fields: dict[str, str]) -> None:
        for writer in self._writers:
            writer.write(_block(fields))

    def drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    @property
    def connections(self) -> int:
        return len(self._writers)

    def count(self, action: str) -> int:
        return sum(1 for a in self.received if a.get("Action", "").lower() == action)

    async def wait_for_action(self, action: str, count: int = 1, timeout: float = 2.0) -> None:
        async def arrived() -> None:
            while self.count(action) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(arrived(), timeout)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2)


def _block(fields: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"


def server_config(port: int, secret: str = SECRET, **timing: float) -> AmiServer:
    settings = {"connect_timeout": 1.0, "action_timeout": 0.5, "ping_interval": 5.0} | timing
    return AmiServer(host="127.0.0.1", port=port, username="dialer", secret=secret, **settings)


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[AmiGateway], Awaitable[asyncio.Task[None]]]]:
    """Start `gateway.run()` and stop it cleanly at the end of the test."""
    started: list[tuple[AmiGateway, asyncio.Event, asyncio.Task[None]]] = []

    async def start(gateway: AmiGateway) -> asyncio.Task[None]:
        stopping = asyncio.Event()
        task = asyncio.create_task(gateway.run(stopping))
        started.append((gateway, stopping, task))
        await asyncio.wait_for(gateway.connected.wait(), 3)
        return task

    yield start
    for gateway, stopping, task in started:
        stopping.set()
        await asyncio.wait_for(task, 3)
        await gateway.close()


# -- login ----------------------------------------------------------------------


async def test_connect_once_logs_in_with_events_on(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port))
    await gateway.connect_once()
    try:
        assert gateway.connected.is_set()
        login = ami.received[0]
        assert (login["Action"], login["Username"], login["Secret"], login["Events"]) == (
            "Login", "dialer", SECRET, "on"
        )
        assert ami.logins == 1
    finally:
        await gateway.close()
    assert not gateway.connected.is_set()


async def test_a_wrong_secret_raises_login_failed(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port, secret="wrong"))
    with pytest.raises(AmiLoginFailed, match="Authentication failed"):
        await gateway.connect_once()
    assert not gateway.connected.is_set()
    with pytest.raises(AmiNotConnected):
        await gateway.action({"Action": "Ping"})


async def test_no_reply_to_the_login_is_not_connected(ami: FakeAmi) -> None:
    ami.silent.add("login")
    gateway = AmiGateway(server_config(ami.port, action_timeout=0.3))
    with pytest.raises(AmiNotConnected, match="login"):
        await gateway.connect_once()
    assert not gateway.connected.is_set()


async def test_nothing_listening_is_not_connected() -> None:
    spare = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = spare.sockets[0].getsockname()[1]
    spare.close()
    await spare.wait_closed()
    with pytest.raises(AmiNotConnected, match="cannot reach AMI"):
        await AmiGateway(server_config(port)).connect_once()


# -- actions ----------------------------------------------------------------------


async def test_an_action_without_a_reply_times_out(ami: FakeAmi) -> None:
    ami.silent.add("queuestatus")
    gateway = AmiGateway(server_config(ami.port, action_timeout=0.3))
    await gateway.connect_once()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AmiTimeout, match="QueueStatus"):
            await gateway.action({"Action": "QueueStatus", "Queue": "sales"})
        assert 0.25 <= loop.time() - started < 2
        with pytest.raises(AmiTimeout):
            await gateway.action({"Action": "QueueStatus"}, timeout=0.1)
        # The connection is still usable afterwards.
        reply = await gateway.action({"Action": "Ping"})
        assert reply.get("Ping") == "Pong"
    finally:
        await gateway.close()


async def test_an_error_reply_raises_action_failed(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port))
    await gateway.connect_once()
    try:
        with pytest.raises(AmiActionFailed, match="Invalid/unknown command") as raised:
            await gateway.action({"Action": "NoSuchThing"})
        assert raised.value.action == "NoSuchThing"
    finally:
        await gateway.close()


async def test_originate_carries_the_attempt_id_as_action_id_and_channel_id(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port))
    await gateway.connect_once()
    try:
        await gateway.originate(
            attempt_id=ATTEMPT, channel="PJSIP/15550001@carrier", context="dialer-outbound", exten="answered",
            timeout_ms=25000, caller_id="+15550100", variables={"DIALER_ATTEMPT": ATTEMPT},
        )
    finally:
        await gateway.close()
    [originate] = [a for a in ami.received if a["Action"] == "Originate"]
    assert (originate["ActionID"], originate["ChannelId"], originate["Async"], originate["Timeout"]) == (
        ATTEMPT, ATTEMPT, "true", "25000"
    )
    assert originate["Variable"] == f"DIALER_ATTEMPT={ATTEMPT}"


async def test_a_pending_originate_fails_on_a_drop_and_is_not_sent_again(ami: FakeAmi, running) -> None:
    ami.silent.add("originate")
    gateway = AmiGateway(server_config(ami.port, action_timeout=2.0))
    await running(gateway)
    pending = asyncio.create_task(gateway.originate(
        attempt_id=ATTEMPT, channel="PJSIP/15550001@carrier", context="dialer-outbound", exten="answered",
        timeout_ms=25000, caller_id="+15550100", variables={},
    ))
    await ami.wait_for_action("originate")
    ami.drop()
    with pytest.raises((AmiNotConnected, AmiTimeout)):
        await asyncio.wait_for(pending, 3)
    # run() logs in again; Asterisk's FullyBooted would make panoramisk re-send what it kept.
    await until(lambda: ami.logins == 2 and gateway.connected.is_set())
    await asyncio.sleep(0.3)
    assert ami.count("originate") == 1, "the Originate was sent again after the reconnect: the customer is dialed twice"


async def test_any_pending_action_fails_on_a_drop(ami: FakeAmi) -> None:
    ami.silent.add("queuestatus")
    gateway = AmiGateway(server_config(ami.port, action_timeout=2.0))
    await gateway.connect_once()
    try:
        pending = asyncio.create_task(gateway.action({"Action": "QueueStatus"}, as_list=True))
        await ami.wait_for_action("queuestatus")
        loop = asyncio.get_running_loop()
        started = loop.time()
        ami.drop()
        with pytest.raises(AmiNotConnected):
            await asyncio.wait_for(pending, 3)
        assert loop.time() - started < 1.5, "the drop, not the action timeout, should end the wait"
        assert not gateway.connected.is_set()
    finally:
        await gateway.close()


# -- the supervised connection ------------------------------------------------------


async def test_run_reconnects_after_a_drop(ami: FakeAmi, running) -> None:
    gateway = AmiGateway(server_config(ami.port))
    logins: list[int] = []

    async def on_login() -> None:
        logins.append(ami.logins)

    gateway.on_login(on_login)
    await running(gateway)
    assert logins == [1]
    ami.drop()
    await until(lambda: not gateway.connected.is_set())
    await asyncio.wait_for(gateway.connected.wait(), 3)
    assert gateway.reconnects == 1
    assert logins == [1, 2]
    assert gateway.last_error is None
    reply = await gateway.action({"Action": "Ping"})
    assert reply.get("Ping") == "Pong"


async def test_run_keeps_retrying_until_the_server_answers(ami: FakeAmi) -> None:
    ami.silent.add("login")
    gateway = AmiGateway(server_config(ami.port, action_timeout=0.2))
    stopping = asyncio.Event()
    task = asyncio.create_task(gateway.run(stopping))
    try:
        await ami.wait_for_action("login", count=2, timeout=3)
        assert not gateway.connected.is_set()
        assert gateway.last_error is not None and "login" in gateway.last_error
        ami.silent.discard("login")
        await asyncio.wait_for(gateway.connected.wait(), 4)
        assert gateway.last_error is None
    finally:
        stopping.set()
        await asyncio.wait_for(task, 3)
        await gateway.close()


async def test_the_ping_watchdog_notices_a_silent_server(ami: FakeAmi, running) -> None:
    gateway = AmiGateway(server_config(ami.port, action_timeout=0.3, ping_interval=0.2))
    await running(gateway)
    ami.silent.add("ping")
    await until(lambda: gateway.reconnects >= 1 and ami.logins >= 2, timeout=4)
    assert ami.count("ping") >= 1


async def test_stopping_ends_run_promptly(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port, ping_interval=30))
    stopping = asyncio.Event()
    task = asyncio.create_task(gateway.run(stopping))
    await asyncio.wait_for(gateway.connected.wait(), 3)
    stopping.set()
    await asyncio.wait_for(task, 1)
    assert not gateway.connected.is_set()
    await until(lambda: ami.connections == 0)


# -- events ------------------------------------------------------------------------


async def test_events_land_on_the_queue_with_the_receive_time(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port), wanted_events=frozenset({"hangup", "newchannel"}),
                         clock=lambda: 1732350000.5)
    await gateway.connect_once()
    try:
        ami.send_event({"Event": "RTCPSent", "Privilege": "reporting,all", "Uniqueid": ATTEMPT})
        ami.send_event({"Event": "Hangup", "Privilege": "call,all", "Uniqueid": ATTEMPT, "Cause": "17",
                        "Cause-txt": "User busy"})
        event, at = await asyncio.wait_for(gateway.events.get(), 2)
        assert at == 1732350000.5
        assert (event["Event"], event["Uniqueid"], event["Cause"], event["Cause-txt"]) == (
            "Hangup", ATTEMPT, "17", "User busy"
        )
        assert gateway.events.empty(), "an event the gateway was told to drop was queued"
    finally:
        await gateway.close()


async def test_subscribe_asks_for_each_event_the_daemon_reads_by_name(ami: FakeAmi) -> None:
    ami.filter_right = True
    gateway = AmiGateway(server_config(ami.port))
    await gateway.connect_once()
    try:
        assert await subscribe(gateway, SUBSCRIBED) is True
        filters = [a for a in ami.received if a["Action"] == "Filter"]
        assert [(a["Operation"], a["MatchCriteria"]) for a in filters] == [
            ("Add", f"action(include),name({name})") for name in SUBSCRIBED
        ]
        assert {name.lower() for name in SUBSCRIBED} | {"queuemember"} == WANTED
    finally:
        await gateway.close()


async def test_a_filter_refused_for_want_of_the_system_right_is_no_error(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port), wanted_events=WANTED)
    await gateway.connect_once()
    try:
        assert await subscribe(gateway, SUBSCRIBED) is False
        # Still logged in, and still filtering on its own side.
        assert gateway.connected.is_set()
        ami.send_event({"Event": "RTCPSent", "Uniqueid": "1"})
        ami.send_event({"Event": "Hangup", "Uniqueid": "1", "Cause": "16"})
        raw, _ = await asyncio.wait_for(gateway.events.get(), 2)
        assert raw["Event"] == "Hangup"
    finally:
        await gateway.close()


async def test_without_a_filter_every_event_is_queued(ami: FakeAmi) -> None:
    gateway = AmiGateway(server_config(ami.port))
    await gateway.connect_once()
    try:
        ami.send_event({"Event": "Newchannel", "Uniqueid": ATTEMPT, "Channel": "PJSIP/carrier-00000001"})
        names = set()
        while "Newchannel" not in names:
            event, _ = await asyncio.wait_for(gateway.events.get(), 2)
            names.add(event["Event"])
        assert names <= {"FullyBooted", "Newchannel"}
    finally:
        await gateway.close()


# -- backoff --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_backoff_grows_and_stays_within_the_cap(seed: int) -> None:
    delays = list(islice(backoff_delays(base=0.5, cap=30.0, rng=random.Random(seed)), 20))
    assert 0.25 <= delays[0] <= 0.5
    assert all(0 < d <= 30.0 for d in delays)
    # Full jitter within [ceiling/2, ceiling]: non-decreasing until the cap is reached.
    below_cap = delays[:7]  # ceilings 0.5 ... 32 -> capped from the 7th on
    assert below_cap == sorted(below_cap)
    assert delays[8] > delays[0] * 16
    assert all(d >= 15.0 for d in delays[7:]), "once capped, the delay stays between cap/2 and cap"


def test_backoff_is_random_between_runs() -> None:
    first = list(islice(backoff_delays(rng=random.Random(1)), 5))
    second = list(islice(backoff_delays(rng=random.Random(2)), 5))
    assert first != second


async def test_an_unreadable_secret_at_a_reconnect_is_retried_not_fatal(ami: FakeAmi, tmp_path) -> None:
    # A secret file being rotated (gone for a moment) must not kill the supervisor:
    # a dead supervisor leaves a daemon that is alive but never reconnects.
    secret_file = tmp_path / "ami-secret"
    server = AmiServer(username="dialer", secret_file=secret_file, host="127.0.0.1", port=ami.port)
    gateway = AmiGateway(server)
    stopping = asyncio.Event()
    task = asyncio.create_task(gateway.run(stopping))
    try:
        await until(lambda: gateway.last_error is not None)
        assert not task.done()
        assert "ami-secret" in gateway.last_error
        secret_file.write_text(SECRET + "\n")
        await asyncio.wait_for(gateway.connected.wait(), 5)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 3)
        await gateway.close()


def test_a_line_lost_before_the_manager_adopts_it_is_quiet() -> None:
    # A proxy or a dying Asterisk may accept and close at once, before the manager
    # takes the protocol over (a loop turn later): that is a failed connect, retried
    # with backoff, not an AttributeError traceback in the operator's journal.
    class Transport:
        closed = False

        def close(self) -> None:
            self.closed = True

    protocol = _Protocol()
    protocol.connection_made(Transport())
    protocol.connection_lost(None)
    assert protocol.closed
