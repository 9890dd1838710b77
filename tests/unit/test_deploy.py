"""The deployment recipes work: the install script the Dockerfile runs, and the systemd unit.

`systemd-analyze verify` insists that the programs a unit runs exist. The unit
is checked with `--root` against a scratch root directory holding the entry
point where install.sh puts it (`/opt/dialer/bin/dialer`) and the host's
standard units, so the check is real without touching the machine's own /opt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
UNIT = CHECKOUT / "config" / "dialer.service"


@pytest.fixture(scope="module")
def installed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root directory with dialer installed at /opt/dialer by docker/install.sh."""
    source = tmp_path_factory.mktemp("source")
    # What the Dockerfile copies into the image, no more.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, source / name)
    for name in ("dialer", "docker"):
        shutil.copytree(CHECKOUT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    root = tmp_path_factory.mktemp("root")
    result = subprocess.run(
        ["sh", str(source / "docker" / "install.sh"), str(source), str(root / "opt" / "dialer")],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.mark.timeout(300)
def test_install_script_gives_a_working_dialer(installed_root: Path) -> None:
    dialer = installed_root / "opt" / "dialer" / "bin" / "dialer"
    version = subprocess.run([str(dialer), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("dialer ")
    # Every subcommand's module imports in the installed environment: a missing
    # dependency in pyproject.toml shows here, not in production.
    help_text = subprocess.run([str(dialer), "--help"], capture_output=True, text=True, timeout=60).stdout
    for command in ("run", "status", "campaign", "db"):
        assert command in help_text


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("systemd-analyze is missing and cannot be installed (not root, or no apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=300, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "systemd"],
        check=True, capture_output=True, timeout=300, env=env,
    )
    return shutil.which("systemd-analyze") or "systemd-analyze"


@pytest.mark.timeout(600)
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    root = tmp_path / "root"
    # The standard targets (network-online.target, multi-user.target...) as the host has them.
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / "dialer.service")
    for program in _programs(UNIT.read_text()):
        # ExecStart's entry point where install.sh puts it (the install test checks the
        # real install); the others (kill) as the host has them.
        source = Path(sys.executable).with_name("dialer") if program.name == "dialer" else shutil.which(program.name)
        assert source, f"{program} not found on this machine"
        (root / program.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / program.relative_to("/"))
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", "dialer.service"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Unknown keys and bad values are only warnings: none about our unit either.
    assert "dialer.service" not in result.stdout + result.stderr, result.stdout + result.stderr


def _programs(unit: str) -> list[Path]:
    return [
        Path(line.split("=", 1)[1].lstrip("-@:+!").split()[0])
        for line in unit.splitlines()
        if line.startswith("Exec")
    ]


def test_the_unit_is_a_hardened_notify_service() -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"]
    assert settings["ExecStart"][0].startswith("/opt/dialer/bin/dialer run")
    assert settings["WatchdogSec"] and settings["User"] == ["dialer"]
    assert settings["StateDirectory"] == ["dialer"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert settings[key] == ["yes"], key
    assert settings["ProtectSystem"] == ["strict"]
    # Stop must outlast the default drain time (30 s) so calls are not cut by SIGKILL.
    assert int(settings["TimeoutStopSec"][0]) > 30
