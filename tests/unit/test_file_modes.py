"""Files holding customers' data or secrets are not world-readable, whatever the umask.

The SQLite database (and its -wal and -shm) as any command creates it, and the
config and secrets files docker/install.sh installs. install.sh runs for real,
as root, in a private mount namespace whose /etc and /var/lib are scratch
copies: the `dialer` user and /etc/dialer it creates never reach the machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dialer.cli.main import main
from dialer.store.store import Store

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture
def open_umask() -> Iterator[None]:
    before = os.umask(0o022)  # an interactive shell's usual umask: new files 0644
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_are_private(tmp_path: Path, open_umask: None) -> None:
    (tmp_path / "campaigns").mkdir()
    config = tmp_path / "dialer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": [{"username": "dialer", "secret": "x"}],
                "database": {"url": "sqlite+aiosqlite:///state/dialer.db"},
                "campaign_dir": "campaigns",
            }
        )
    )
    db = tmp_path / "state" / "dialer.db"
    # Any CLI command that creates it: here `dialer db upgrade`.
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert mode(db) == 0o600
    db.unlink()
    assert asyncio.run(_modes_while_open(db)) == {"dialer.db": 0o600, "dialer.db-wal": 0o600, "dialer.db-shm": 0o600}


async def _modes_while_open(db: Path) -> dict[str, int]:
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        await store.sync_campaign("spring", "telemarketing")
        async with store.engine.connect():  # the WAL files exist while a connection is open
            return {p.name: mode(p) for p in db.parent.iterdir()}
    finally:
        await store.close()


async def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "dialer.db"
    db.touch(mode=0o640)
    db.chmod(0o640)  # an operator's choice (a reporting group) is theirs
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    await store.close()
    assert mode(db) == 0o640


@pytest.mark.timeout(300)
def test_install_sh_installs_config_and_secrets_0640_root_dialer(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test runs install.sh as root in a mount namespace: needs root and unshare(1)")
    etc, var_lib = tmp_path / "etc", tmp_path / "var-lib"
    shutil.copytree("/etc", etc, symlinks=True)
    var_lib.mkdir()
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):  # what the Dockerfile copies, as test_deploy does
        shutil.copy(CHECKOUT / name, source / name)
    for name in ("dialer", "docker"):
        shutil.copytree(CHECKOUT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        f"mount --bind {etc} /etc && mount --bind {var_lib} /var/lib && umask 022 && "
        f"DIALER_SYSTEM=1 sh {source}/docker/install.sh {source} {tmp_path}/opt/dialer"
    )
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    groups = {line.split(":")[0]: int(line.split(":")[2]) for line in (etc / "group").read_text().splitlines()}
    assert not any(line.startswith("dialer:") for line in Path("/etc/group").read_text().splitlines())
    for name in ("dialer.yaml", "environment"):
        installed = etc / "dialer" / name
        info = installed.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, groups["dialer"]), name
    assert "DIALER_API_TOKEN" in (etc / "dialer" / "environment").read_text()
    assert mode(var_lib / "dialer") == 0o750
