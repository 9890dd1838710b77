"""apt-get while another apt holds its locks: wait a while, go on once free, else one clear line.

The locks are scratch files held by a child process with fcntl, as apt and dpkg
hold theirs, and apt-get is a fake that behaves as apt 2.6 does (checked on
Debian 12): `install` waits for the frontend lock up to `DPkg::Lock::Timeout`,
`update` fails at once on a held lists lock. No real lock is touched and no
package is installed.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from dialer import apt
from dialer.apt import AptBusy, AptError, AptLocks, install_packages
from dialer.cli.main import main
from dialer.sandbox import root as root_module

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def locks(tmp_path: Path) -> AptLocks:
    (tmp_path / "lists").mkdir()
    (tmp_path / "dpkg").mkdir()
    return AptLocks(lists=tmp_path / "lists" / "lock", frontend=tmp_path / "dpkg" / "lock-frontend")


@pytest.fixture
def hold() -> Iterator[Callable[[Path, float], subprocess.Popen[str]]]:
    """Hold a lock from another process for some seconds; every holder is gone after the test."""
    holders: list[subprocess.Popen[str]] = []

    def start(path: Path, seconds: float) -> subprocess.Popen[str]:
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        return holder

    yield start
    for holder in holders:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def comm(process: subprocess.Popen[str]) -> str:
    return Path(f"/proc/{process.pid}/comm").read_text().strip()


def _free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


class FakeAptGet:
    """apt-get as far as its locks go; records each argv."""

    def __init__(self, locks: AptLocks) -> None:
        self.locks = locks
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        options = dict(a.split("=", 1) for a in argv if "::" in a)
        action = next(a for a in argv[1:] if not a.startswith("-") and "::" not in a)
        if action == "update":
            if not _free(self.locks.lists):
                return self._fail(f"E: Could not get lock {self.locks.lists}. It is held by process 4242 (apt-get)")
        else:
            waited_until = time.monotonic() + float(options.get("DPkg::Lock::Timeout", "0"))
            while not _free(self.locks.frontend):
                if time.monotonic() >= waited_until:
                    return self._fail(
                        f"E: Unable to acquire the dpkg frontend lock ({self.locks.frontend}), is another process using it?"
                    )
                time.sleep(0.05)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def _fail(self, message: str) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(self.calls[-1], 100, "", message + "\n")

    def actions(self) -> list[str]:
        return [next(a for a in c[1:] if not a.startswith("-") and "::" not in a) for c in self.calls]


def test_update_waits_for_the_lists_lock_and_goes_on(locks: AptLocks, hold) -> None:  # type: ignore[no-untyped-def]
    holder = hold(locks.lists, 1.0)
    fake, said = FakeAptGet(locks), []
    started = time.monotonic()
    install_packages(["sip-tester"], lock_wait=20, runner=fake, locks=locks, progress=said.append)
    assert time.monotonic() - started >= 0.5  # it did wait
    assert fake.actions() == ["update", "install"]  # no update run into the held lock
    assert said == [
        f"waiting for another package manager (process {holder.pid} ({comm(holder)}) holds {locks.lists}), up to 20 s"
    ]
    install = fake.calls[-1]
    assert install[:3] == ["apt-get", "-o", install[2]] and re.fullmatch(r"DPkg::Lock::Timeout=\d+", install[2])
    assert install[3:] == ["install", "-y", "--no-install-recommends", "sip-tester"]


def test_install_waits_for_the_frontend_lock_and_goes_on(locks: AptLocks, hold) -> None:  # type: ignore[no-untyped-def]
    hold(locks.frontend, 1.0)
    fake = FakeAptGet(locks)
    install_packages(["sip-tester"], lock_wait=20, runner=fake, locks=locks)
    assert fake.actions() == ["update", "install"]
    # apt itself may wait for what is left of the 20 s, not for a fresh 20 s (how much is
    # left depends on the machine's load: no tighter bound).
    assert 0 < int(fake.calls[-1][2].split("=")[1]) <= 20


def test_a_lock_held_too_long_ends_in_one_clear_line(locks: AptLocks, hold) -> None:  # type: ignore[no-untyped-def]
    holder = hold(locks.lists, 60)
    fake = FakeAptGet(locks)
    started = time.monotonic()
    with pytest.raises(AptBusy) as busy:
        install_packages(["sip-tester"], lock_wait=1.0, runner=fake, locks=locks)
    assert time.monotonic() - started < 5
    message = str(busy.value)
    assert "\n" not in message
    assert f"another package manager (process {holder.pid} ({comm(holder)})) held {locks.lists} for over 1 s" in message
    assert fake.calls == []  # nothing ran into the lock


def test_a_lock_taken_between_the_look_and_apt_is_retried(locks: AptLocks, hold) -> None:  # type: ignore[no-untyped-def]
    # /proc/locks shows the lock free, but apt meets it held: as when another apt starts in between.
    fake = FakeAptGet(locks)
    answers = iter([subprocess.CompletedProcess([], 100, "", "E: Could not get lock /var/cache/apt/archives/lock. It is held by process 7 (unattended-upgr)\n")])

    def racing(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        fake.calls.append(list(argv))
        return next(answers, subprocess.CompletedProcess(list(argv), 0, "", ""))

    said: list[str] = []
    install_packages(["sipp"], lock_wait=20, runner=racing, locks=locks, progress=said.append, sleep=lambda s: None)
    assert fake.actions() == ["update", "update", "install"]
    assert said == ["waiting for another package manager (process 7 (unattended-upgr) holds /var/cache/apt/archives/lock), up to 20 s"]


def test_other_apt_failures_are_one_line_too(locks: AptLocks) -> None:
    def broken(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), 100, "Reading package lists...\n", "E: Unable to locate package sipp\n")

    with pytest.raises(AptError, match=r"^`apt-get update` failed \(100\): Unable to locate package sipp$"):
        install_packages(["sipp"], lock_wait=5, runner=broken, locks=locks)


@pytest.fixture
def tools_missing(monkeypatch: pytest.MonkeyPatch, locks: AptLocks, tmp_path: Path) -> FakeAptGet:
    """As on a fresh machine: no mmdebstrap and no SIPp yet; apt-get is the fake, the locks are scratch.

    A PATH shim stands in for apt-get too, failing, should any code run the real one.
    """
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "apt-get").write_text("#!/bin/sh\necho 'E: the test shim stands in for apt-get' >&2\nexit 100\n")
    (shim / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    real_which = root_module.shutil.which
    monkeypatch.setattr(root_module.shutil, "which", lambda cmd: None if cmd in ("mmdebstrap", "sipp") else real_which(cmd))
    monkeypatch.setattr(root_module.os, "geteuid", lambda: 0)
    fake = FakeAptGet(locks)
    monkeypatch.setattr(apt, "run_command", fake)
    monkeypatch.setattr(apt, "LOCKS", locks)
    monkeypatch.setenv("DIALER_APT_LOCK_WAIT", "1")
    return fake


@pytest.mark.parametrize("command", ["sandbox", "demo"])
def test_dialer_demo_and_sandbox_up_say_one_line_while_apt_is_busy(  # type: ignore[no-untyped-def]
    command: str, tmp_path: Path, locks: AptLocks, hold, tools_missing: FakeAptGet,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    holder = hold(locks.frontend, 60)
    # The demo logs to a file of its own; the test's logging stays as it is.
    monkeypatch.setattr("dialer.cli.demo.configure_logging", lambda *args, **kwargs: None)
    argv = ["sandbox", "up", "--workdir", str(tmp_path / "sb")] if command == "sandbox" else ["demo", "--workdir", str(tmp_path / "demo")]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == (1 if command == "sandbox" else 2), err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    line = err.strip()
    prefix = "dialer sandbox up: " if command == "sandbox" else "dialer: "
    assert line.startswith(prefix + "cannot install mmdebstrap sip-tester: another package manager"), line
    assert f"(process {holder.pid} ({comm(holder)})) held {locks.frontend} for over 1 s" in line
    assert tools_missing.actions() == ["update"]  # install never ran
