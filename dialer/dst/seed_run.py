"""One seed: the real daemon, a simulated Asterisk, seeded faults, invariants after every step.

Everything random comes from the seed (customers, faults, backoff jitter, the
attempt ids), time is the virtual loop's, the database calls run inline: the
same seed gives the same trace, line for line, and its hash is the proof.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import os
import random
import re
import tempfile
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
import yaml

from dialer.config.campaign_rules import DEFAULT_RETRIES
from dialer.config.loader import load_campaign, load_config
from dialer.config.models import AmiServer
from dialer.core.outcomes import DialingMode
from dialer.daemon import campaign_watcher
from dialer.daemon.server import Daemon, StartupError
from dialer.dst.pbx_world import DaemonPbx
from dialer.dst.inline_sqlite import DatabaseFaults, inline_sqlite
from dialer.dst.invariants import Checker, Ledger, Violation
from dialer.dst.virtual_loop import VirtualTimeLoop
from dialer.leads.csv_import import parse_leads_csv
from dialer.store import dnc
from dialer.store.store import Store

ZONE = "America/New_York"
CAMPAIGN = "dst"
QUEUE = "sales"
KILL_WAIT_S = 30.0
_LOGGED_FACTS = ("attempt", "outcome", "state", "adopted", "closed", "left_open", "channels", "error", "task")
STEP_S = 60.0
"""Invariants are checked after every fault and at least once a simulated minute."""
FAULT_MEAN_S = 90.0
RETRIES_MIN = {"busy": 2, "no_answer": 5, "congestion": 1, "machine": 10, "abandoned": 10, "interrupted": 3,
               "refused": 1}
DENY_PATTERN = r"^\+1212555\d\d\d7$"
"""Numbers a campaign edit may come to deny mid-run (`numbers.deny`): one lead in ten."""


@dataclass
class SeedResult:
    seed: int
    days: float
    calls: int
    faults: int
    trace_hash: str
    violation: Violation | None
    cpu_s: float
    trace: list[str] = field(default_factory=list)
    closed_by_rule: dict[int, str] = field(default_factory=dict)
    """Leads closed after a fault because their own rule for it ran out (no violation): lead -> outcome."""

    @property
    def ok(self) -> bool:
        return self.violation is None


class Tracer:
    def __init__(self, clock: Callable[[], float], echo: Callable[[str], None] | None) -> None:
        self.clock = clock
        self.lines: list[str] = []
        self.digest = hashlib.sha256()
        self.echo = echo

    def __call__(self, line: str) -> None:
        text = f"{self.clock():.3f} {line}"
        self.lines.append(text)
        self.digest.update(text.encode() + b"\n")
        if self.echo is not None:
            self.echo(text)


def replay_command(seed: int, days: float) -> str:
    return f"dialer dst --replay {seed} --days {days:g}"


def run_seed(seed: int, days: float, *, echo: Callable[[str], None] | None = None,
             keep_trace: bool = False, log_level: int = logging.WARNING) -> SeedResult:
    """Simulate `days` of the daemon's life under seed `seed`; stop at the first broken invariant."""
    started = time.process_time()
    loop = VirtualTimeLoop()
    loop.set_task_factory(_task_factory)
    with tempfile.TemporaryDirectory(prefix="dst-") as tmp:
        sim = _Simulation(seed, days, Path(tmp), loop, echo)
        sim.log_level = log_level
        try:
            with _patched(sim):
                loop.run_until_complete(sim.run())
        finally:
            sim.close()
            _close_loop(loop)
    return SeedResult(seed, days, len(sim.pbx.dial_log), sim.faults, sim.trace.digest.hexdigest()[:16],
                      sim.violation, time.process_time() - started, sim.trace.lines if keep_trace else [],
                      dict(sim.checker.ledger.closed_by_rule) if sim.checker is not None else {})


def _close_loop(loop: VirtualTimeLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


_GENERATION: contextvars.ContextVar[int] = contextvars.ContextVar("dst_daemon_generation", default=0)
_TASK_GENERATION: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = weakref.WeakKeyDictionary()
"""Which daemon made each task: a crash cancels all of one daemon's tasks and nothing else."""


def _task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    context = kwargs.get("context")
    generation = context.get(_GENERATION, 0) if context is not None else _GENERATION.get()
    task = asyncio.Task(coro, loop=loop, **kwargs)
    if generation:
        _TASK_GENERATION[task] = generation
    return task


@contextmanager
def _patched(sim: _Simulation) -> Iterator[None]:
    """What the simulation replaces for its run only: the thread of aiosqlite, uuid4, the OS file watch,
    the log output. All restored on leaving."""
    saved_uuid = uuid.uuid4
    saved_awatch = campaign_watcher.awatch
    saved_logs = structlog.get_config()
    ids = random.Random(sim.seed * 7919 + 1)
    uuid.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)  # type: ignore[assignment]
    campaign_watcher.awatch = sim.awatch  # type: ignore[assignment]
    structlog.configure(
        processors=[sim.log_to_trace],
        wrapper_class=structlog.make_filtering_bound_logger(sim.log_level),
        cache_logger_on_first_use=False,
    )
    try:
        with inline_sqlite(sim.db_faults):
            yield
    finally:
        uuid.uuid4 = saved_uuid  # type: ignore[assignment]
        campaign_watcher.awatch = saved_awatch  # type: ignore[assignment]
        structlog.configure(**saved_logs)


def _epoch_for(seed: int) -> float:
    """The virtual start: a June 2026 weekday, near the window's opening, its middle or its close."""
    rng = random.Random(seed)
    day = 1 + rng.randrange(5)  # 2026-06-01 is a Monday
    hour, minute = rng.choice([(8, 59), (11, 0), (14, 30), (19, 57)])
    return datetime(2026, 6, day, hour, minute, tzinfo=ZoneInfo(ZONE)).timestamp()


_schema: bytes | None = None


async def _fresh_database(path: Path) -> None:
    """An empty database at the newest schema: migrated once per process, then copied (a third of a
    short seed's time was Alembic's)."""
    global _schema
    if _schema is None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        await store.close()
        _schema = path.read_bytes()
        return
    path.write_bytes(_schema)
    path.chmod(0o600)


class _Simulation:
    def __init__(self, seed: int, days: float, tmp: Path, loop: VirtualTimeLoop,
                 echo: Callable[[str], None] | None) -> None:
        self.seed = seed
        self.days = days
        self.tmp = tmp
        self.loop = loop
        self.epoch = _epoch_for(seed)
        self.rng = random.Random(seed)
        self.faults_rng = random.Random(seed * 31 + 7)
        self.trace = Tracer(self.clock, echo)
        self.db_faults = DatabaseFaults(self.clock)
        self.agents = [f"PJSIP/agent{i}" for i in range(1, 3 + self.rng.randrange(6))]
        self.pbx = DaemonPbx(random.Random(seed * 17 + 3), self.agents, self.trace)
        self.violation: Violation | None = None
        self.faults = 0
        self.daemon: Daemon | None = None
        self._life: asyncio.Task[None] | None = None
        self._generation = 0
        self._files_changed = asyncio.Event()
        self._done = asyncio.Event()
        self._next_phone = 0
        self.db_path = tmp / "dialer.db"
        self.campaign_dir = tmp / "campaigns"
        self.campaign_dir.mkdir()
        self.config_path = tmp / "dialer.yaml"
        self.campaign_doc = self._campaign_doc()
        self.checker: Checker | None = None
        self.log_level = logging.WARNING
        """The daemon's log lines from this level on go into the trace (and its hash)."""

    def clock(self) -> float:
        return self.epoch + self.loop.time()

    def close(self) -> None:
        if self.checker is not None:
            self.checker.close()

    # -- the world -------------------------------------------------------------------

    def _campaign_doc(self) -> dict[str, Any]:
        # In this order: a seed's draws, and so its trace, depend on it.
        mode = self.rng.choice([DialingMode.progressive.value, DialingMode.predictive.value, DialingMode.ratio.value])
        return {
            "name": CAMPAIGN, "type": "telemarketing", "enabled": True,
            "trunk": "PJSIP/{number}@carrier", "caller_id": "+15550100", "queue": QUEUE,
            "abandon_message": "dialer-abandon",
            "dialing": {"mode": mode, "ring_timeout": 20, "max_lines": 4 + self.rng.randrange(12),
                        "agent_wait": 2, **({"ratio": 1.5} if mode == "ratio" else {})},
            "calling_hours": {"start": "09:00", "end": "20:00"},
            "retries": {k: {"delay_minutes": v, "max_attempts": DEFAULT_RETRIES[k].max_attempts}
                        for k, v in RETRIES_MIN.items()},
        }

    def _write_campaign(self, text: str | None = None) -> None:
        path = self.campaign_dir / "dst.yaml"
        path.write_text(text if text is not None else yaml.safe_dump(self.campaign_doc, sort_keys=True))
        # The watcher compares stamps with its clock: the file is written "now", in virtual time.
        moment = int(self.clock() * 1e9)
        os.utime(path, ns=(moment, moment))

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump({
            "ami": [{"username": "dialer", "secret": "dst", "host": "127.0.0.1"}],
            "database": {"url": f"sqlite+aiosqlite:///{self.db_path}"},
            "campaign_dir": str(self.campaign_dir),
            "drain_timeout": 900,
            "tick_interval": 1.0,
            "agents": [{"id": a.split("/")[1], "interface": a, "queues": [QUEUE]} for a in self.agents],
        }))

    def _phones(self, count: int) -> list[str]:
        phones = []
        for _ in range(count):
            self._next_phone += 1
            phones.append(f"+1212555{self._next_phone:04d}")
        return phones

    async def _import(self, store: Store, count: int) -> None:
        """Lead intake as `dialer leads import` does it: CSV text through the campaign's rules."""
        campaign = load_campaign(self.campaign_dir / "dst.yaml")
        phones = self._phones(count)
        lines = ["phone,name"] + [f"{p},Customer {p[-4:]}" for p in phones]
        lines += ["not-a-number,Bad row", f"{phones[0]},Duplicate"]
        parsed = parse_leads_csv("\n".join(lines) + "\n", campaign.numbers.policy(None), campaign.numbers.deny_list())
        campaign_id = await store.sync_campaign(CAMPAIGN, "telemarketing")
        await store.import_leads(campaign_id, parsed.rows)
        assert self.checker is not None
        ids = self.checker._db.execute("SELECT id FROM leads").fetchall()
        self.checker.ledger.imported |= {row[0] for row in ids}
        self.trace(f"intake {len(parsed.rows)} rows, {parsed.rejected} rejected")

    # -- the daemon's life ----------------------------------------------------------

    def _start_daemon(self) -> None:
        config = load_config(self.config_path)
        self._generation += 1
        self.daemon = Daemon(config, {}, clock=self.clock, watch_campaigns=True, config_path=self.config_path,
                             pbx_factory=self.pbx.attach, monotonic_clock=self.loop.time)
        self.trace(f"daemon start {self._generation}")
        # Every task the daemon makes from here on inherits its generation (see _task_factory).
        self._life = self.loop.create_task(self._live(self.daemon, self._generation))
        _TASK_GENERATION[self._life] = self._generation

    async def _live(self, daemon: Daemon, generation: int) -> None:
        _GENERATION.set(generation)
        try:
            await daemon.startup()
        except StartupError as exc:
            self.trace(f"daemon start_failed {str(exc)[:60]}")
            await self._kill(daemon, restart_in=5.0, own_task=True)
            return
        try:
            await daemon.main_loop()
        except Exception as exc:
            # The process would exit here; its supervisor (systemd's Restart=) starts it again.
            self.trace(f"daemon exited {type(exc).__name__}: {str(exc)[:60]}")
            await self._kill(daemon, restart_in=5.0, own_task=True)

    async def _kill(self, daemon: Daemon, *, restart_in: float | None, own_task: bool = False) -> None:
        """kill -9: the tasks stop where they are, uncommitted writes roll back; only the file and the PBX stay."""
        self.trace("daemon killed")
        self.pbx.daemon_killed()
        generation = self._generation
        current = asyncio.current_task()
        tasks = [t for t, g in list(_TASK_GENERATION.items()) if g == generation and not t.done() and t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=KILL_WAIT_S)
            for task in stuck:
                # A task that outlives its cancellation would go on acting for a dead daemon.
                self.trace(f"task survived the kill: {task.get_name()} {task.get_coro()}")
        if daemon.store is not None:
            await daemon.store.engine.dispose()
        self.daemon = None
        self._life = None
        if restart_in is not None:
            self.loop.call_later(restart_in, self._start_daemon)

    async def awatch(self, directory: Any, *, stop_event: asyncio.Event, **_: Any) -> Any:
        """The drop directory's change notices, from the simulation's own file edits."""
        while not stop_event.is_set():
            stop = asyncio.ensure_future(stop_event.wait())
            changed = asyncio.ensure_future(self._files_changed.wait())
            try:
                await asyncio.wait([stop, changed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                changed.cancel()
                await asyncio.gather(stop, changed, return_exceptions=True)
            if stop_event.is_set():
                return
            self._files_changed.clear()
            yield {(2, str(self.campaign_dir / "dst.yaml"))}

    def log_to_trace(self, _logger: Any, method: str, event: dict[str, Any]) -> Any:
        facts = " ".join(f"{k}={str(event[k])[:40]}" for k in _LOGGED_FACTS if k in event)
        if event.get("exc_info"):
            error = sys.exc_info()[1]
            facts += f" raised={type(error).__name__}: {str(error)[:80]}"
        self.trace(f"log {method} {event.get('event')} {facts}".rstrip())
        raise structlog.DropEvent

    # -- faults ------------------------------------------------------------------------

    async def _faults(self, until: float) -> None:
        rng = self.faults_rng
        kinds = ["crash", "pbx_restart", "ami_drop", "half_open", "refuse", "db_slow", "db_locked",
                 "campaign_edit", "agent_logout", "intake", "dnc", "slow_replies"]
        while True:
            # A short run gets its faults closer together: at least about eight of them.
            await asyncio.sleep(rng.expovariate(1 / min(FAULT_MEAN_S, until / 8)))
            if self.loop.time() >= until:
                return
            kind = rng.choice(kinds)
            self.faults += 1
            await self._inject(kind, rng)
            self._check()

    async def _inject(self, kind: str, rng: random.Random) -> None:
        now = self.clock()
        if kind == "crash":
            if self.daemon is not None:
                await self._kill(self.daemon, restart_in=rng.uniform(1.0, 40.0))
        elif kind == "pbx_restart":
            if self.pbx.up():
                self.pbx.restart(down_for=rng.uniform(1.0, 40.0))
        elif kind == "ami_drop":
            self.trace("fault ami_drop")
            self.pbx.drop_connection()
        elif kind == "half_open":
            seconds = rng.uniform(5.0, 60.0)
            self.trace(f"fault half_open {seconds:.1f}s")
            self.pbx.half_open(seconds)
        elif kind == "refuse":
            count = rng.randrange(1, 6)
            self.trace(f"fault refuse_originates {count}")
            self.pbx.refuse_originates(count)
        elif kind == "slow_replies":
            seconds = rng.choice([0.5, 2.0, 12.0])
            self.trace(f"fault slow_replies {seconds}s")
            self.pbx.slow_replies(seconds)
            self.loop.call_later(rng.uniform(5.0, 60.0), self.pbx.slow_replies, 0.0)
        elif kind == "db_slow":
            seconds, per_call = rng.uniform(5.0, 60.0), rng.choice([0.2, 1.0, 3.0])
            self.trace(f"fault db_slow {seconds:.1f}s {per_call}s/call")
            self.db_faults.slow(now, seconds, per_call)
        elif kind == "db_locked":
            seconds = rng.uniform(2.0, 20.0)
            self.trace(f"fault db_locked {seconds:.1f}s")
            self.db_faults.lock(now, seconds)
        elif kind == "campaign_edit":
            self._edit_campaign(rng)
        elif kind == "agent_logout":
            busy = self.pbx.busy_agents()
            agent = rng.choice(busy or self.agents)
            self.trace(f"fault agent_logout {agent} in_call={agent in busy}")
            self.pbx.agent_logout(agent)
            self.loop.call_later(rng.uniform(20.0, 300.0), self._agent_back, agent)
        elif kind == "intake":
            store = await Store.open(f"sqlite+aiosqlite:///{self.db_path}", upgrade=False)
            try:
                await self._import(store, rng.randrange(1, 15))
            except Exception as exc:  # a locked database refuses an import as it would the CLI's
                self.trace(f"intake failed {type(exc).__name__}")
            finally:
                await store.close()
        elif kind == "dnc":
            await self._add_dnc(rng)

    def _edit_campaign(self, rng: random.Random) -> None:
        what = rng.choice(["max_lines", "mode", "deny", "broken", "same"])
        doc = self.campaign_doc
        if what == "max_lines":
            doc["dialing"]["max_lines"] = 1 + rng.randrange(20)
        elif what == "mode":
            doc["dialing"]["mode"] = rng.choice([DialingMode.progressive.value, DialingMode.predictive.value])
            doc["dialing"].pop("ratio", None)
        elif what == "deny":
            doc.setdefault("numbers", {})["deny"] = [DENY_PATTERN]
        self.trace(f"fault campaign_edit {what}")
        if what == "broken":
            self._write_campaign("name: dst\ndialing: {max_lines: -3}\n")
            self._files_changed.set()
            self.loop.call_later(rng.uniform(1.0, 30.0), self._restore_campaign)
            return
        self._write_campaign()
        if what == "deny":
            assert self.checker is not None
            now = self.clock()
            for (phone,) in self.checker._db.execute("SELECT phone FROM leads").fetchall():
                if re.match(DENY_PATTERN, phone):
                    self.checker.ledger.listed_at.setdefault(phone, now)
        self._files_changed.set()

    def _agent_back(self, agent: str) -> None:
        self.trace(f"agent_login {agent}")
        self.pbx.agent_login(agent)

    def _restore_campaign(self) -> None:
        self.trace("campaign file fixed")
        self._write_campaign()
        self._files_changed.set()

    async def _add_dnc(self, rng: random.Random) -> None:
        assert self.checker is not None
        phones = [p for (p,) in self.checker._db.execute("SELECT phone FROM leads WHERE state != 'done'")]
        if not phones:
            return
        phone = rng.choice(phones)
        store = await Store.open(f"sqlite+aiosqlite:///{self.db_path}", upgrade=False)
        try:
            await dnc.add_numbers(store, [phone], scope="*", source="dst", now=datetime.fromtimestamp(self.clock(), UTC))
            self.checker.ledger.listed_at.setdefault(phone, self.clock())
            self.trace(f"dnc add {phone}")
        except Exception as exc:
            self.trace(f"dnc failed {type(exc).__name__}")
        finally:
            await store.close()

    # -- invariants --------------------------------------------------------------------

    def _check(self, *, final: bool = False) -> None:
        if self.violation is not None or self.checker is None:
            return
        found = self.checker.check(self.clock(), final=final)
        if found is not None:
            self.violation = found
            self.trace(f"VIOLATION {found.invariant}")
            self._done.set()

    async def _steps(self) -> None:
        while True:
            await asyncio.sleep(STEP_S)
            self._check()

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> None:
        self._write_config()
        self._write_campaign()
        await _fresh_database(self.db_path)
        store = await Store.open(f"sqlite+aiosqlite:///{self.db_path}")
        campaign = load_campaign(self.campaign_dir / "dst.yaml")
        self.checker = Checker(str(self.db_path), self.pbx, Ledger(
            campaign, ZONE, {k: v * 60.0 for k, v in RETRIES_MIN.items()}
        ))
        await self._import(store, 20 + self.rng.randrange(60))
        await store.close()
        self._start_daemon()
        until = self.days * 86400.0
        background = [self.loop.create_task(self._faults(until)), self.loop.create_task(self._steps())]
        stop = self.loop.create_task(asyncio.sleep(until))
        done = self.loop.create_task(self._done.wait())
        await asyncio.wait([stop, done], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        done.cancel()
        for task in background:
            task.cancel()
        await asyncio.gather(stop, done, *background, return_exceptions=True)
        if self.violation is None:
            await self._wind_down()
        elif self.daemon is not None:
            await self._kill(self.daemon, restart_in=None)

    async def _wind_down(self) -> None:
        """Heal every fault, let the daemon drain and stop, then judge what is left."""
        self.trace("heal and drain")
        self.db_faults.heal()
        self.pbx.half_open(0.0)
        self.pbx.slow_replies(0.0)
        self.pbx.refuse_originates(0)
        for agent in self.agents:
            self.pbx.agent_login(agent)
        self._restore_campaign()
        await self._stop_daemon()
        # Calls left up at the stop are for the next start to adopt: run one more daemon to see them end.
        if self.pbx.live_calls():
            await asyncio.sleep(300.0)
            self._start_daemon()
            await self._stop_daemon()
        self._check(final=True)

    async def _stop_daemon(self) -> None:
        """SIGTERM and the drain; a daemon that dies meanwhile is restarted (as systemd would) and asked again."""
        for _ in range(10):
            for _ in range(120):
                daemon = self.daemon
                if daemon is not None and daemon.ami is not None and daemon.ami.connected.is_set():
                    break
                await asyncio.sleep(1.0)
            daemon, life = self.daemon, self._life
            if daemon is None or life is None:
                continue
            daemon.handle_exit()
            await asyncio.gather(life, return_exceptions=True)
            if self.daemon is daemon:
                break
        else:
            self.trace("no daemon would stop")
            return
        try:
            await daemon.shutdown()
        except Exception as exc:
            self.trace(f"daemon shutdown failed {type(exc).__name__}")
        self.daemon = None
        self._life = None
        self.trace("daemon stopped")
