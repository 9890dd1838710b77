"""The tests' private PostgreSQL: which server it runs, the package installed when none is,
and never a system cluster or root."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.postgres_server import PACKAGE, PostgresServer, PostgresUnavailable, server_bin_dir


def initdb(root: Path, version: str) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "initdb").touch()
    return bin_dir


def test_the_newest_installed_server_is_used_and_nothing_installed(tmp_path: Path) -> None:
    asked: list[Sequence[str]] = []
    initdb(tmp_path, "9")
    newest = initdb(tmp_path, "15")
    initdb(tmp_path, "13")
    assert server_bin_dir(asked.append, tmp_path) == newest and asked == []


def test_the_package_is_installed_when_no_server_is(tmp_path: Path) -> None:
    asked: list[Sequence[str]] = []

    def install(packages: Sequence[str]) -> None:
        asked.append(packages)
        initdb(tmp_path, "15")

    assert server_bin_dir(install, tmp_path) == tmp_path / "15" / "bin" and asked == [[PACKAGE]]


def test_a_failed_install_is_said_plainly(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match=f"no initdb under {tmp_path} after installing postgresql"):
        server_bin_dir(lambda _packages: None, tmp_path)


def test_the_session_server_is_private_and_not_run_by_root(postgres_server: PostgresServer) -> None:
    assert postgres_server.process is not None and postgres_server.process.poll() is None
    owner = os.stat(f"/proc/{postgres_server.process.pid}").st_uid
    assert owner != 0 and owner == os.stat(postgres_server.data).st_uid
    assert postgres_server.data.is_relative_to(postgres_server.root) and postgres_server.port > 0
