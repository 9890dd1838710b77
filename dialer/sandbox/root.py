"""The Debian root Asterisk runs in, built once with mmdebstrap and cached.

Debian's own Asterisk 22 (sid) in a chroot needs no container engine and no
registry, only Debian's mirrors; the same root serves any number of sandbox
instances, each with its own directory under `srv/dialer-sandbox/`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dialer.apt import AptError, install_packages
from dialer.sandbox.errors import SandboxStartError, SandboxUnavailable

Progress = Callable[[str], None]

SUITE = "sid"
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm")
HOST_PACKAGES = {"mmdebstrap": "mmdebstrap", "sipp": "sip-tester"}  # command -> Debian package
INSTANCES_DIR = "srv/dialer-sandbox"

BUILD_TIMEOUT_S = 900


def default_root_path() -> Path:
    if env := os.environ.get("DIALER_SANDBOX_ROOT"):
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dialer" / "asterisk-root"


def _quiet(message: str) -> None:
    pass


def require_root_user() -> None:
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the Asterisk sandbox needs root (it builds a Debian root with mmdebstrap and runs "
            "Asterisk with chroot); run it as root, e.g. in CI or a throwaway VM"
        )


def ensure_host_tools(progress: Progress = _quiet) -> None:
    """Install mmdebstrap and SIPp from Debian if they are missing (root only)."""
    missing = [pkg for cmd, pkg in HOST_PACKAGES.items() if shutil.which(cmd) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SandboxUnavailable(
            f"missing Debian packages {' '.join(missing)}: run as root "
            f"`apt-get install -y --no-install-recommends {' '.join(missing)}`"
        )
    progress(f"installing {' '.join(missing)} with apt-get")
    try:
        # Waits for another apt (unattended upgrades on a new machine) for a while.
        install_packages(missing, progress=progress)
    except AptError as exc:
        raise SandboxUnavailable(f"cannot install {' '.join(missing)}: {exc}") from None


def root_is_complete(root: Path) -> bool:
    return (root / "usr/sbin/asterisk").is_file() and modules_dir(root) is not None


def modules_dir(root: Path) -> str | None:
    """Asterisk's module directory, as a path inside the root (arch-dependent)."""
    found = sorted(root.glob("usr/lib/*/asterisk/modules/app_queue.so"))
    if not found:
        return None
    return "/" + str(found[0].parent.relative_to(root))


def ensure_root(root: Path, progress: Progress = _quiet) -> Path:
    """Return `root`, building it first if needed.

    The build goes into a sibling temp dir renamed into place only when
    mmdebstrap succeeded, so an interrupted build is never taken for a good
    root; a lock keeps two sandboxes from building at once.
    """
    if root_is_complete(root):
        return root
    require_root_user()
    ensure_host_tools(progress)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if root_is_complete(root):
            return root
        if root.exists():
            raise SandboxStartError(f"{root} exists but is not a complete Asterisk root; remove it and retry")
        for stale in root.parent.glob(f".{root.name}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        building = root.parent / f".{root.name}.building-{os.getpid()}"
        _mmdebstrap(building, progress)
        if not root_is_complete(building):
            shutil.rmtree(building, ignore_errors=True)
            raise SandboxStartError(f"mmdebstrap finished but {building} has no Asterisk")
        os.rename(building, root)
    return root


def _mmdebstrap(target: Path, progress: Progress) -> None:
    argv = [
        "mmdebstrap",
        "--variant=apt",
        # sid's Release files may be stale on a mirror snapshot.
        '--aptopt=Acquire::Check-Valid-Until "false"',
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(target),
    ]
    progress(f"building the Asterisk root in {target} (Debian {SUITE}, about 30 s, once)")
    started = time.monotonic()
    tail: list[str] = []
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    # A stalled mirror must not hang a test run: kill the build after a generous limit.
    watchdog = threading.Timer(BUILD_TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-30:]
            if line.startswith(("I: ", "E: ", "W: ")):
                progress(f"  [{time.monotonic() - started:4.0f}s] {line[3:]}")
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        watchdog.cancel()
        proc.stdout.close()  # or the pipe is left for the garbage collector (a ResourceWarning)
    if proc.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise SandboxStartError(f"mmdebstrap failed ({proc.returncode}):\n" + "\n".join(tail))
