"""Installing Debian packages with apt-get while another apt may be at work.

A new cloud machine runs unattended-upgrades (or cloud-init's apt) right after
boot, holding apt's locks for minutes: a first `dialer demo` then met
"Could not get lock". Here another apt makes us wait, for a bounded time, and
then fail with one line naming the lock and who holds it.

- `apt-get install` waits for dpkg's frontend lock itself when given
  `-o DPkg::Lock::Timeout=SECONDS`.
- `apt-get update` ignores that option for the lists lock
  (/var/lib/apt/lists/lock): apt 2.6 fails at once, checked on Debian 12. We wait
  for that lock with a bounded poll of /proc/locks, which reads who holds it
  without taking it (taking it even briefly could make the other apt fail).
- A lock taken between our look and apt's start, or one the timeout does not
  cover (/var/cache/apt/archives/lock), shows as apt's "Could not get lock":
  that run is retried until the same deadline.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

LOCK_WAIT_S = 300.0
"""How long another apt may hold the locks before we give up (DIALER_APT_LOCK_WAIT overrides)."""
COMMAND_TIMEOUT_S = 600.0
"""How long one apt-get may run once it has its locks (a slow mirror)."""
POLL_S = 1.0


@dataclass(frozen=True)
class AptLocks:
    lists: Path = Path("/var/lib/apt/lists/lock")
    frontend: Path = Path("/var/lib/dpkg/lock-frontend")


LOCKS = AptLocks()

Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]
Progress = Callable[[str], None]

_LOCK_TROUBLE = re.compile(r"Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock")
_HELD_BY = re.compile(r"held by process (\d+) \(([^)]*)\)")


class AptError(Exception):
    """apt-get could not install what was asked; the message is one line."""


class AptBusy(AptError):
    """Another package manager kept apt's lock past our wait."""


def run_command(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run apt-get non-interactively (the default runner; tests give their own)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
    )


def lock_wait_from_env() -> float:
    value = os.environ.get("DIALER_APT_LOCK_WAIT")
    try:
        return max(0.0, float(value)) if value else LOCK_WAIT_S
    except ValueError:
        return LOCK_WAIT_S


def install_packages(
    packages: Sequence[str],
    *,
    progress: Progress | None = None,
    lock_wait: float | None = None,
    runner: Runner | None = None,
    locks: AptLocks | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """`apt-get update` then `apt-get install -y --no-install-recommends PACKAGES`, waiting for apt's locks.

    Raises AptBusy when another apt keeps a lock for `lock_wait` seconds, AptError when apt fails otherwise.
    """
    session = _Session(
        lock_wait_from_env() if lock_wait is None else lock_wait,
        runner or run_command,
        locks or LOCKS,
        progress or (lambda _line: None),
        clock,
        sleep,
    )
    session.run(["apt-get", "update"], wait_for=session.locks.lists)
    session.run(["apt-get", "install", "-y", "--no-install-recommends", *packages], wait_for=session.locks.frontend)


@dataclass
class _Session:
    lock_wait: float
    runner: Runner
    locks: AptLocks
    progress: Progress
    clock: Callable[[], float]
    sleep: Callable[[float], None]

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.lock_wait
        self._told = False

    def run(self, command: list[str], *, wait_for: Path) -> None:
        shown = " ".join(command)
        while True:
            self._wait_until_free(wait_for)
            remaining = max(0, int(self.deadline - self.clock()))
            # Options go before the action word; install waits for dpkg's frontend lock itself.
            argv = [command[0], "-o", f"DPkg::Lock::Timeout={remaining}", *command[1:]]
            try:
                done = self.runner(argv, COMMAND_TIMEOUT_S + remaining)
            except subprocess.TimeoutExpired:
                raise AptError(f"`{shown}` took over {COMMAND_TIMEOUT_S + remaining:.0f} s: is a package mirror reachable?") from None
            except OSError as exc:
                raise AptError(f"cannot run `{shown}`: {exc.strerror or exc}") from None
            if done.returncode == 0:
                return
            output = (done.stderr or "") + (done.stdout or "")
            if not _LOCK_TROUBLE.search(output):
                raise AptError(f"`{shown}` failed ({done.returncode}): {_errors(output)}")
            if self.clock() >= self.deadline:
                raise AptBusy(self._busy_message(_lock_named(output) or wait_for, _holder_from(output)))
            self._say(_lock_named(output) or wait_for, _holder_from(output))
            self.sleep(POLL_S)

    def _wait_until_free(self, lock: Path) -> None:
        while (holder := lock_holder(lock)) is not None:
            if self.clock() >= self.deadline:
                raise AptBusy(self._busy_message(lock, holder))
            self._say(lock, holder)
            self.sleep(min(POLL_S, max(0.05, self.deadline - self.clock())))

    def _say(self, lock: Path | str, holder: str | None) -> None:
        if not self._told:
            self._told = True
            self.progress(
                f"waiting for another package manager ({holder or 'another process'} holds {lock}), "
                f"up to {self.lock_wait:.0f} s"
            )

    def _busy_message(self, lock: Path | str, holder: str | None) -> str:
        return (
            f"another package manager ({holder or 'another process'}) held {lock} for over {self.lock_wait:.0f} s "
            "(automatic updates on a new machine do this); let it finish, then run this again "
            "(DIALER_APT_LOCK_WAIT=SECONDS waits longer)"
        )


def lock_holder(lock: Path) -> str | None:
    """'process PID (NAME)' holding a lock on `lock` per /proc/locks, or None when free (or unknown)."""
    try:
        info = lock.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a process blocked waiting for this lock, not its holder
            continue
        if len(fields) >= 6 and fields[5] == device:
            pid = fields[4]
            if not pid.isdigit() or pid == "0":  # an open file description lock, or a process we cannot see
                return "another process"
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                name = "?"
            return f"process {pid} ({name})"
    return None


def _holder_from(output: str) -> str | None:
    found = _HELD_BY.search(output)
    return f"process {found.group(1)} ({found.group(2)})" if found else None


def _lock_named(output: str) -> str | None:
    found = re.search(r"(/[\w./-]*lock(?:-frontend)?)", output)
    return found.group(1) if found else None


def _errors(output: str) -> str:
    errors = [line[3:].strip() for line in output.splitlines() if line.startswith("E: ")]
    last = errors or [line.strip() for line in output.splitlines() if line.strip()][-1:] or ["no message"]
    return "; ".join(last)[-500:]
