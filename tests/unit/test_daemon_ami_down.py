"""`dialer run` while Asterisk is down: it starts, answers /healthz, says not ready on
/readyz, and logs in once AMI appears. A login Asterisk refuses still fails the start.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import yaml

from daemon_process import TOKEN, DaemonProcess, FakeAmi, daemon_processes, free_port, write_config

Start = Callable[..., Awaitable[DaemonProcess]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[Start]:
    async for start in daemon_processes(tmp_path):
        yield start


def http_on(port: int) -> dict[str, object]:
    return {"bind": "127.0.0.1", "port": port, "token": TOKEN}


async def _poll(client: httpx.AsyncClient, path: str, want: int, daemon: DaemonProcess, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if daemon.process.returncode is not None:
            raise AssertionError(f"dialer run exited {daemon.process.returncode}:\n{daemon.log.read_text()[-3000:]}")
        try:
            response = await client.get(path)
            if response.status_code == want:
                return response
            last = response.text
        except httpx.TransportError as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never answered {want} in {timeout} s (last: {last}):\n{daemon.log.read_text()[-3000:]}")


@pytest.mark.timeout(60)
async def test_the_daemon_starts_without_ami_and_logs_in_once_it_appears(
    tmp_path: Path, start_daemon: Start, request: pytest.FixtureRequest
) -> None:
    ami_port, http_port = free_port(), free_port()  # nothing listens on ami_port yet
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    request.addfinalizer(notify.close)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    daemon = await start_daemon(
        write_config(tmp_path, ami_port, http_on(http_port)), env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as client:
        await _poll(client, "/healthz", 200, daemon, 20)
        # systemd is told the service is up, and why it does not dial yet.
        first = (await asyncio.wait_for(asyncio.get_running_loop().sock_recv(notify, 4096), 5)).decode()
        fields = dict(line.split("=", 1) for line in first.splitlines())
        assert fields["READY"] == "1"
        assert fields["STATUS"].startswith("AMI DOWN"), fields
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"ami": "not logged in", "database": "ok"}
        assert any(e.get("event") == "ami.connect_failed" for e in daemon.events())

        ami = FakeAmi(ami_port)
        await ami.start()
        try:
            ready = await _poll(client, "/readyz", 200, daemon, 30)
            assert ready.json()["checks"] == {"ami": "ok", "database": "ok"}
            assert ami.logins >= 1
            assert any(e.get("event") == "ami.logged_in" for e in daemon.events())
        finally:
            daemon.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.process.wait(), 20) == 0, daemon.log.read_text()[-3000:]
            await ami.close()


@pytest.mark.timeout(60)
async def test_a_login_asterisk_refuses_still_fails_the_start(tmp_path: Path, start_daemon: Start) -> None:
    ami = FakeAmi(free_port())
    await ami.start()
    try:
        daemon = await start_daemon(write_config(tmp_path, ami.port, http_on(free_port()), secret="wrong-secret"))
        assert await asyncio.wait_for(daemon.process.wait(), 30) == 2
    finally:
        await ami.close()
    text = daemon.log.read_text()
    assert "cannot start: Asterisk refused the login of user 'dialer'" in text
    assert "check the AMI username and secret" in text
    assert "Traceback" not in text


@pytest.mark.timeout(60)
async def test_an_unset_secret_variable_fails_the_start_in_one_line(tmp_path: Path, start_daemon: Start) -> None:
    config = write_config(tmp_path, free_port(), http_on(free_port()))
    settings = yaml.safe_load(config.read_text())
    settings["ami"][0].pop("secret")
    settings["ami"][0]["secret_env"] = "DIALER_TEST_UNSET_SECRET"
    config.write_text(yaml.safe_dump(settings))
    daemon = await start_daemon(config)
    assert await asyncio.wait_for(daemon.process.wait(), 30) == 2
    text = daemon.log.read_text()
    assert "cannot start: the AMI secret cannot be read: environment variable DIALER_TEST_UNSET_SECRET is not set" in text
    assert "Traceback" not in text
