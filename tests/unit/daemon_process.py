"""`dialer run` as a subprocess, as systemd runs it, and a small fake AMI for it.

The fake speaks just enough AMI for the daemon's start: banner, Login, Ping and the
two lists asked after each login (empty); it may listen on a port chosen beforehand,
so a test can start it after the daemon.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import yaml

SECRET = "right-secret"
TOKEN = "t" * 32


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _block(fields: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"


class FakeAmi:
    """Banner, Login, Ping and the two lists the daemon asks for after a login (both empty)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.logins = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                try:
                    block = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                action = dict(
                    line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line
                )
                self._answer(writer, action)
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> None:
        name = action.get("Action", "").lower()
        action_id = action.get("ActionID", "")
        if name == "login":
            if action.get("Secret") != SECRET:
                writer.write(_block({"Response": "Error", "ActionID": action_id, "Message": "Authentication failed"}))
                return
            self.logins += 1
            writer.write(_block({"Response": "Success", "ActionID": action_id, "Message": "Authentication accepted"}))
            writer.write(_block({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}))
        elif name in ("coreshowchannels", "queuestatus"):
            complete = "CoreShowChannelsComplete" if name == "coreshowchannels" else "QueueStatusComplete"
            writer.write(_block({"Response": "Success", "ActionID": action_id, "EventList": "start"}))
            writer.write(_block({"Event": complete, "ActionID": action_id, "EventList": "Complete", "ListItems": "0"}))
        elif name == "ping":
            writer.write(_block({"Response": "Success", "ActionID": action_id, "Ping": "Pong"}))
        else:
            writer.write(_block({"Response": "Success", "ActionID": action_id}))

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


def write_config(tmp: Path, ami_port: int, http: dict[str, object], secret: str = SECRET) -> Path:
    (tmp / "campaigns").mkdir()
    path = tmp / "dialer.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "ami": [
                    {"host": "127.0.0.1", "port": ami_port, "username": "dialer", "secret": secret,
                     "connect_timeout": 1, "action_timeout": 2}
                ],
                "database": {"url": "sqlite+aiosqlite:///dialer.db"},
                "campaign_dir": "campaigns",
                "logging": {"level": "info", "format": "json"},
                "http": http,
            }
        )
    )
    return path


class DaemonProcess:
    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


async def daemon_processes(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[DaemonProcess]]]:
    """Yield a function starting `dialer run --config CONFIG`; what it started is killed at the end."""
    started: list[DaemonProcess] = []

    async def start(config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        log = tmp_path / "daemon.log"
        with log.open("w") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dialer", "run", "--config", str(config),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        daemon = DaemonProcess(process, log)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.returncode is None:
            daemon.process.send_signal(signal.SIGKILL)
            await daemon.process.wait()
