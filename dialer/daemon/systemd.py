"""Talk to systemd through `NOTIFY_SOCKET` (the sd_notify protocol), without libsystemd.

A service of `Type=notify` tells systemd when it is ready (READY=1), that its
main loop is alive (WATCHDOG=1, at least every `WATCHDOG_USEC`), that it is
stopping (STOPPING=1) and a one-line STATUS= shown by `systemctl status`.
Outside systemd `NOTIFY_SOCKET` is unset and every call does nothing.

The protocol is one datagram of `KEY=value` lines to a Unix socket; a name
starting with `@` is in the abstract namespace.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("dialer.systemd")


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of systemd's timeout), or None when no watchdog applies."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    # systemd sets WATCHDOG_PID to the main process; a child that inherited the
    # environment must not ping on its parent's behalf.
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1_000_000 / 2


def socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock addresses (vsock:CID:PORT) are for VMs; not ours


def encode(fields: Mapping[str, str | int]) -> bytes:
    for key, value in fields.items():
        if "\n" in str(value) or "=" in key:
            raise ValueError(f"sd_notify field {key!r} cannot hold a newline or '='")
    return "\n".join(f"{key}={value}" for key, value in fields.items()).encode()


class Notifier:
    """Sends sd_notify messages; silent when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = watchdog_interval(environ, os.getpid() if pid is None else pid)
        self._socket: socket.socket | None = None
        self._next_watchdog = 0.0
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send one message; False (and a log line) if systemd could not be told."""
        if self.address is None:
            return False
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        try:
            self._socket.sendto(encode(fields), self.address)
        except OSError as exc:
            # A full or vanished socket must never stop the dialer; systemd's
            # own watchdog is what notices a silent service.
            log.warning("systemd.notify_failed", error=str(exc), fields=sorted(fields))
            return False
        return True

    def ready(self, status: str) -> None:
        self._last_status = status
        self.notify(READY=1, STATUS=status, MAINPID=os.getpid())

    def stopping(self, status: str = "stopping: draining calls") -> None:
        self._last_status = status
        self.notify(STOPPING=1, STATUS=status)

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notify(STATUS=text)

    def watchdog(self, now: float) -> None:
        """Ping if half the watchdog time has passed since the last ping (`now` is monotonic)."""
        if self.watchdog_interval is None or now < self._next_watchdog:
            return
        self._next_watchdog = now + self.watchdog_interval
        self.notify(WATCHDOG=1)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
