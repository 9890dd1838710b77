"""Starting, watching and stopping the sandbox's processes by pid."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def spawn(argv: Sequence[str], output: Path, stdout_too: bool = True) -> subprocess.Popen[bytes]:
    """Start a process in its own session so it outlives `dialer sandbox up`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out if stdout_too else subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )


def command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # A zombie has finished; it only waits for its parent to reap it.
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_alive(pid: int, expect: str | None = None) -> bool:
    """Alive, and (if `expect` is given) still the program we started, not a reused pid."""
    cmdline = command_line(pid)
    if cmdline is None:
        return False
    return expect is None or expect in cmdline


def terminate(pid: int, expect: str | None = None, grace_s: float = 5.0) -> bool:
    """SIGTERM the process (and its session's group), SIGKILL after `grace_s`.

    Returns whether it was running. A pid that now belongs to another program
    is left alone.
    """
    if not is_alive(pid, expect):
        return False
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and is_alive(pid):
        _reap(pid)
        time.sleep(0.05)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    # Only our own children can be reaped; others are init's business.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_in_use(proto: str, port: int, host: str = "127.0.0.1") -> bool:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if kind == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
