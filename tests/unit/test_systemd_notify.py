"""sd_notify without libsystemd: what is sent, when, and that nothing breaks outside systemd."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.daemon.systemd import Notifier, encode, socket_address, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


def test_ready_status_stopping_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("AMI up; 1/1 campaign(s) running")
    assert received(sock) == {"READY": "1", "STATUS": "AMI up; 1/1 campaign(s) running", "MAINPID": str(os.getpid())}
    notifier.status("same")
    notifier.status("same")  # unchanged: not sent again
    notifier.stopping()
    assert received(sock) == {"STATUS": "same"}
    assert received(sock) == {"STOPPING": "1", "STATUS": "stopping: draining calls"}
    notifier.close()


def test_watchdog_pings_at_half_the_timeout(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert notifier.watchdog_interval == 2.0
    sock.setblocking(False)  # a datagram to a Unix socket is there as soon as it is sent
    pinged = []
    for now in (100.0, 101.0, 101.9, 102.0, 103.5, 104.0):
        notifier.watchdog(now)
        try:
            if received(sock) == {"WATCHDOG": "1"}:
                pinged.append(now)
        except BlockingIOError:
            pass
    notifier.close()
    assert pinged == [100.0, 102.0, 104.0]


def test_watchdog_settings() -> None:
    assert watchdog_interval({}, 10) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 10) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "10"}, 10) == 15.0
    # Meant for another process (the environment was inherited): not ours to ping.
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "11"}, 10) is None


def test_addresses_and_encoding() -> None:
    assert socket_address("") is None
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@hidden") == b"\0hidden"
    assert socket_address("vsock:2:1234") is None
    assert encode({"READY": 1, "STATUS": "ok"}) == b"READY=1\nSTATUS=ok"
    with pytest.raises(ValueError):
        encode({"STATUS": "two\nlines"})


def test_outside_systemd_nothing_is_sent_and_a_dead_socket_is_not_fatal(tmp_path: Path) -> None:
    quiet = Notifier({})
    assert not quiet.enabled
    assert quiet.notify(READY=1) is False
    quiet.watchdog(1.0)
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.notify(READY=1) is False  # logged, not raised
    gone.close()


def test_abstract_socket(tmp_path: Path) -> None:
    name = f"dialer-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(1)
    notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
    try:
        notifier.notify(READY=1)
        assert received(sock) == {"READY": "1"}
    finally:
        notifier.close()
        sock.close()
