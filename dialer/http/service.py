"""Run the HTTP app inside the daemon's own event loop (uvicorn's Server, embedded).

uvicorn's `serve()` would install its own SIGINT/SIGTERM handlers over the
daemon's; its phases are driven here one by one instead, on a socket bound
here, so a port already in use is a clear start-up error rather than uvicorn's
`sys.exit`.
"""

from __future__ import annotations

import asyncio
import socket

import structlog
import uvicorn
from fastapi import FastAPI

from dialer.control.daemon_view import DaemonControl
from dialer.control.startup import StartupError
from dialer.http.connection_guard import GuardedH11Protocol

log = structlog.get_logger("dialer.http")


class HttpBindError(StartupError):
    """The address or port cannot be listened on."""


class HttpTokenError(StartupError):
    """The control API's token is unset, unreadable or weak: no port is opened."""


class HttpService:
    def __init__(self, app: FastAPI, bind: str, port: int) -> None:
        self._config = uvicorn.Config(
            app,
            log_config=None,  # our logging set-up formats uvicorn's lines too
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            # A cap on connections and a deadline for each request (dialer.http.connection_guard).
            http=GuardedH11Protocol,
        )
        self._bind = bind
        self._port = port
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None
        """The port listened on (the one chosen when 0 was asked)."""

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._bind else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._bind, self._port))
        except OSError as exc:
            sock.close()
            raise HttpBindError(f"cannot listen on {self._bind}:{self._port}: {exc.strerror or exc}") from exc
        sock.set_inheritable(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = self._config
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server
        self._task = asyncio.create_task(server.main_loop(), name="http")
        log.info("http.listening", bind=self._bind, port=self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        await self._server.shutdown(sockets=[self._socket] if self._socket else None)
        if self._socket is not None:
            self._socket.close()
        self._server = None


async def start_http(daemon: DaemonControl) -> HttpService:
    """Serve the control API on the configured address; raises HttpTokenError or HttpBindError."""
    from dialer.http.app import build_app  # FastAPI's app is built only by a daemon that serves it

    http = daemon.config.http
    assert http is not None
    # Never an open port that answers every request 401 (or worse): a token
    # that is unset, unreadable or weak stops the start, before anything binds.
    try:
        http.resolve_token()
    except (OSError, LookupError) as exc:
        raise HttpTokenError(f"the control API's token cannot be used: {exc}") from exc
    service = HttpService(build_app(daemon), http.bind, http.port)
    await service.start()
    return service
