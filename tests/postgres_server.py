"""A private PostgreSQL cluster for the tests: Debian's server binaries, `initdb` in a
temporary directory, one server on a free loopback port, stopped at the end.

A system cluster is never touched. PostgreSQL refuses to run as root, so a root test run
(CI) hands the cluster's directory to the `postgres` account (`nobody` when the package
made none) and starts the server as that account. When the binaries are missing the
package is installed with the lock-aware installer, as the sandbox installs SIPp.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from dialer.apt import install_packages
from dialer.store.store import Store

PACKAGE = "postgresql"
BIN_ROOT = Path("/usr/lib/postgresql")
T = TypeVar("T")
SUPERUSER = "dialer"
START_WAIT_S = 60.0
STOP_WAIT_S = 30.0
# Durability buys nothing in a throwaway cluster and costs most of its time.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresUnavailable(Exception):
    """The server could not be installed, initialised or started; the message says why."""


def server_bin_dir(install: Callable[[Sequence[str]], None] | None = None, root: Path = BIN_ROOT) -> Path:
    """The newest installed major version's bin directory, installing the package when none is."""

    def newest() -> Path | None:
        found = sorted(
            (p.parent for p in root.glob("*/bin/initdb")),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        )
        return found[-1] if found else None

    where = newest()
    if where is None:
        (install or _install)([PACKAGE])
        where = newest()
    if where is None:
        raise PostgresUnavailable(f"no initdb under {root} after installing {PACKAGE}")
    return where


def _install(packages: Sequence[str]) -> None:
    install_packages(packages, progress=lambda message: print(f"[postgresql] {message}"))


def run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and neither a postgres nor a nobody account exists")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One cluster and its server process; `database_url()` hands out a fresh, empty database."""

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.account = run_as()
        self.root = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._migrated: str | None = None
        self._shape: str | None = None
        self._clean: list[str] = []
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)

    def _run(self, argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root, **self._user()
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")
        return done

    def _user(self) -> dict[str, object]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": [],
                "env": {"PATH": os.environ.get("PATH", ""), "LANG": "C", "HOME": str(self.root)}}

    def start(self) -> None:
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
                   "-E", "UTF8", "--locale=C", "--no-sync"], timeout=120)
        for _ in range(5):  # another process may take the free port between our look and the server's bind
            self.port = free_port()
            if self._serve():
                return
        raise PostgresUnavailable(f"the server did not start; its log ends: {self._log_tail()}")

    def restart(self) -> None:
        """Stop the server and start it again on its port, as a database server's restart does to clients."""
        self._stop_process()
        if not self._serve():
            raise PostgresUnavailable(f"the server did not start again; its log ends: {self._log_tail()}")

    def _serve(self) -> bool:
        options = [f"-c{key}={value}" for key, value in SETTINGS.items()]
        with self.log.open("ab") as log:
            if self.account is not None:
                os.chown(self.log, self.account.pw_uid, self.account.pw_gid)
            self.process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), *options],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, **self._user(),
            )
        if self._ready():
            return True
        self._stop_process()
        return False

    def _ready(self) -> bool:
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            probe = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER],
                capture_output=True, timeout=10, check=False,
            )
            if probe.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def database_url(self, *, migrated: bool = False) -> str:
        """A new database on this server, as an asyncpg URL: empty, or (`migrated`) a copy of one
        the migrations brought to head once for the session, which spares each test the migrations."""
        template = []
        if migrated:
            if self._clean:
                return self._clean.pop()
            if self._migrated is None:
                self._migrated = self.database_url()
                _run_async(_migrate(self._migrated))
                self._shape = _run_async(_reset(self._migrated, None))
            template = ["--template", make_url(self._migrated).database or ""]
        name = f"t{os.getpid()}_{next(self._names)}"
        # file_copy: a copy of the template's files, far quicker than WAL_LOG's (PostgreSQL 15's default)
        # on a throwaway cluster whose checkpoints cost nothing.
        self._run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                   "--strategy", "file_copy", *template, name])
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def release(self, url: str) -> None:
        """Take back a database `database_url(migrated=True)` gave: emptied for the next test when
        its schema is still the migrations' own, else dropped (a copy costs ten times an emptying)."""
        if self._shape is not None and _run_async(_reset(url, self._shape)) == self._shape:
            self._clean.append(url)
        else:
            self.drop(url)

    def drop(self, url: str) -> None:
        """Drop a database `database_url` gave, closing what a test left connected to it."""
        name = make_url(url).database or ""
        self._run([str(self.bin / "dropdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                   "--force", "--if-exists", name])

    def _stop_process(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, no waiting for clients
            try:
                self.process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_WAIT_S)
        self.process = None

    def stop(self) -> None:
        try:
            self._stop_process()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-800:]
        except OSError as exc:
            return f"(no log: {exc.strerror})"


async def _migrate(url: str) -> None:
    store = await Store.open(url)
    await store.close()


def _run_async(work: Coroutine[Any, Any, T]) -> T:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever the caller runs
        return pool.submit(asyncio.run, work).result()


# Everything a test could have changed besides rows: tables, columns, defaults, indexes,
# triggers, functions, schemas and the migrations' revisions.
SHAPE = """
SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
    SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(column_default, '')
        FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'function ' || proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
    UNION ALL SELECT 'revision ' || version_num FROM alembic_version
) AS shape(x)
"""


async def _reset(url: str, expected: str | None) -> str | None:
    """Empty every table but the revisions (ids start again at 1) and return the database's shape;
    None, touching nothing, when the shape is not `expected` or the database cannot be emptied."""
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database)
    try:
        # What a test left connected could write into the next test's rows.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        shape = await conn.fetchval(SHAPE)
        if expected is not None and shape != expected:
            return None
        tables = [
            f'"public"."{row["tablename"]}"'
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if row["tablename"] != "alembic_version"
        ]
        await conn.execute("SET lock_timeout = '2s'")
        await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        return shape
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()
