"""The API without a token tells nothing of the database, and never runs on a weak or missing token."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import yaml
from structlog.testing import capture_logs

from daemon_process import DaemonProcess, FakeAmi, daemon_processes, free_port, write_config
from dialer.cli.main import main
from dialer.config.models import HttpConfig
from dialer.daemon.server import Daemon, StartupError
from dialer.http.app import build_app
from dialer.http.service import start_http
from ops_fixtures import close_daemon, open_daemon

Start = Callable[..., Awaitable[DaemonProcess]]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


async def test_readyz_says_database_not_writable_and_logs_the_details(daemon: Daemon, tmp_path: Path) -> None:
    # Another hand breaks the database under the daemon (here: the table the check writes to goes).
    with sqlite3.connect(tmp_path / "dialer.db") as other:
        other.execute("ALTER TABLE agents RENAME TO agents_gone")
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as client:
        with capture_logs() as logs:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "database not writable"
    for leak in ("SQL", "UPDATE", "agents", "sqlite", "no such table"):
        assert leak not in response.text, response.text
    [logged] = [e for e in logs if e["event"] == "http.readyz_database"]
    assert "no such table: agents" in logged["error"]


@pytest.mark.parametrize("token", ["", "x", "fifteen-chars-x", "sixteen chars xx", "with\ncontrol-chars-x"])
def test_a_weak_inline_token_fails_validation(tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "dialer.yaml"
    config.write_text(
        yaml.safe_dump({"ami": [{"username": "dialer", "secret": "x"}], "http": {"bind": "0.0.0.0", "token": token}})
    )
    assert main(["validate", str(config)]) == 1
    err = capsys.readouterr()
    output = err.out + err.err
    assert "http.token: token holds" in output and "at least 16" in output, output
    if token:
        assert repr(token) not in output  # never echoed, even when refused


def test_a_sixteen_character_token_validates(tmp_path: Path) -> None:
    assert HttpConfig(token="0123456789abcdef").resolve_token() == "0123456789abcdef"


async def _refused(daemon: Daemon, http: HttpConfig) -> str:
    daemon.config = daemon.config.model_copy(update={"http": http})
    with pytest.raises(StartupError) as refused:
        daemon.http = await start_http(daemon)
    assert daemon.http is None
    return str(refused.value)


async def test_the_server_does_not_start_on_a_weak_or_unreadable_token(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    weak = tmp_path / "api-token"
    weak.write_text("abc\n")
    message = await _refused(daemon, HttpConfig(bind="127.0.0.1", port=port, token_file=weak))
    assert f"token_file {weak} holds 3 character(s)" in message and "abc" not in message.replace(str(weak), "")
    message = await _refused(daemon, HttpConfig(bind="127.0.0.1", port=port, token_file=tmp_path / "missing"))
    assert "token cannot be used" in message and "missing" in message
    monkeypatch.setenv("DIALER_WEAK_TOKEN", "1")
    message = await _refused(daemon, HttpConfig(bind="127.0.0.1", port=port, token_env="DIALER_WEAK_TOKEN"))
    assert "environment variable DIALER_WEAK_TOKEN holds 1 character(s)" in message
    # Nothing was left listening.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[Start]:
    async for start in daemon_processes(tmp_path):
        yield start


@pytest.mark.timeout(60)
async def test_dialer_run_on_all_interfaces_without_its_token_refuses_to_start(
    tmp_path: Path, start_daemon: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIALER_API_TOKEN", raising=False)
    port = free_port()
    ami = FakeAmi(free_port())
    await ami.start()
    try:
        config = write_config(tmp_path, ami.port, {"bind": "0.0.0.0", "port": port, "token_env": "DIALER_API_TOKEN"})
        daemon = await start_daemon(config)
        try:
            code = await asyncio.wait_for(daemon.process.wait(), 15)
        except asyncio.TimeoutError:
            with socket.socket() as probe:
                open_port = probe.connect_ex(("127.0.0.1", port)) == 0
            raise AssertionError(f"dialer run kept running (API port open: {open_port})") from None
    finally:
        await ami.close()
    assert code == 2
    lines = [line for line in daemon.log.read_text().splitlines() if line.startswith("dialer:")]
    assert lines[-1] == (
        "dialer: cannot start: the control API's token cannot be used: environment variable DIALER_API_TOKEN is not set"
    )
    assert "Traceback" not in daemon.log.read_text()
