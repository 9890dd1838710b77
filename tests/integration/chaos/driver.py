"""Runs the chaos: the daemon as a subprocess behind the AMI proxy, the seeded faults,
a /healthz poller, then a clean stop, a last reconcile and the verdicts.

    result = asyncio.run(ChaosDriver(sandbox, workdir, seed=7, duration_s=110, leads=240).run())
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dialer.sandbox import Sandbox, read_agent_events, read_carrier_events
from tests.integration.chaos import campaign_files, fault_plan, hostile_api
from tests.integration.chaos.ami_proxy import AmiProxy
from tests.integration.chaos.invariants import Verdict, judge
from tests.integration.chaos.lab_setup import (
    CHAOS,
    GUARD,
    GUARD_DNC_E164,
    GUARD_DNC_NATIONAL,
    HISTORY_ANSWERED,
    RING_TIMEOUT_S,
    ChaosLab,
    new_lab,
    SEED_HISTORY,
    write_lab,
)
from tests.integration.chaos.run_record import (
    AttemptRow,
    DaemonLife,
    FaultEvent,
    HealthSample,
    LeadRow,
    RunRecord,
)

HEALTH_EVERY_S = 0.5
HEALTH_TIMEOUT_S = 2.0
BLIND_FALLBACK_S = 30.0
AMI_DOWN_S = 8.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ChaosResult:
    record: RunRecord
    verdicts: list[Verdict]
    lab: ChaosLab
    figures: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


class ChaosDriver:
    def __init__(
        self,
        sandbox: Sandbox,
        workdir: Path,
        *,
        seed: int,
        duration_s: float,
        leads: int,
        finish_s: float = 50.0,
        reconcile_s: float = 45.0,
        faults_per_minute: float = 5.0,
        dialer_checkout: Path | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.sandbox = sandbox
        self.state = sandbox.state()
        self.workdir = workdir
        self.seed = seed
        self.duration_s = duration_s
        self.finish_s = finish_s
        self.reconcile_s = reconcile_s
        self.leads = leads
        self.faults_per_minute = faults_per_minute
        # The daemon and the CLI may run another checkout's code (an older tree, to
        # show what it breaks); the sandbox and the checks are always this one's.
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if dialer_checkout is not None:
            self.env["PYTHONPATH"] = str(dialer_checkout.resolve())
        self.say = say
        self.proxy = AmiProxy(self.state.ami.host, self.state.ami.port)
        self.lab: ChaosLab | None = None
        self.record: RunRecord | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._life: DaemonLife | None = None
        self._daemon_lock = asyncio.Lock()
        self._expected_exit = False
        self._stop_polling = asyncio.Event()
        self._dropped: list[str] = []
        self._drop_batches = 0
        self.dnc_dialed_before_listing = 0

    # -- the daemon ---------------------------------------------------------------------

    def _spawn(self, until_done: bool = False) -> None:
        assert self.lab is not None and self.record is not None
        number = len(self.record.daemons) + 1
        log = self.lab.dir / f"daemon-{number}.log"
        argv = [sys.executable, "-m", "dialer", "run", "--config", str(self.lab.config)]
        if until_done:
            argv.insert(4, "--until-done")
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.lab.dir, start_new_session=True,
                env=self.env,
            )  # fmt: skip
        self._life = DaemonLife(number=number, started_at=time.time(), log=str(log))
        self.record.daemons.append(self._life)
        self._expected_exit = False

    def _ended(self, by: str | None) -> None:
        assert self._proc is not None and self._life is not None
        self._life.ended_at = time.time()
        self._life.exit_code = self._proc.returncode
        self._life.ended_by = by
        if by is None:
            self._life.last_error = _last_error(Path(self._life.log))

    async def _kill(self, by: str) -> None:
        assert self._proc is not None
        self._expected_exit = True
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await asyncio.to_thread(self._proc.wait)
        self._ended(by)

    async def _supervise(self) -> None:
        """Like systemd's Restart=on-failure: a daemon that exits by itself is noted and restarted."""
        while not self._stop_polling.is_set():
            await asyncio.sleep(0.3)
            async with self._daemon_lock:
                if self._proc is None or self._expected_exit or self._proc.poll() is None:
                    continue
                self._ended(None)
                self.say(f"[chaos] daemon #{self._life.number if self._life else '?'} exited by itself "
                         f"(code {self._proc.returncode}); restarting it")
                await asyncio.sleep(1.0)
                self._spawn()

    async def _poll_health(self) -> None:
        assert self.lab is not None and self.record is not None
        url = f"http://127.0.0.1:{self.lab.http_port}/healthz"
        async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as client:
            while not self._stop_polling.is_set():
                at = time.time()
                try:
                    response = await client.get(url)
                    sample = HealthSample(at, response.status_code == 200, str(response.status_code))
                except httpx.HTTPError as exc:
                    sample = HealthSample(at, False, type(exc).__name__)
                self.record.health.append(sample)
                await asyncio.sleep(max(0.0, HEALTH_EVERY_S - (time.time() - at)))

    # -- faults --------------------------------------------------------------------------

    async def _fault(self, planned: fault_plan.Planned) -> None:
        assert self.lab is not None and self.record is not None
        rng = planned.rng(self.seed)
        started = time.time()
        detail = ""
        kind = planned.kind
        try:
            if kind == "kill_daemon":
                async with self._daemon_lock:
                    if self._proc is None or self._proc.poll() is not None:
                        detail = "no daemon running"
                    else:
                        await self._kill("kill_daemon")
                        if planned.variant == "ami_down":
                            self.proxy.block(AMI_DOWN_S)
                        await asyncio.sleep(rng.uniform(0.5, 2.0))
                        self._spawn()
                        detail = f"daemon #{len(self.record.daemons)} started"
                        if planned.variant == "ami_down":
                            detail += f" with AMI unreachable for {AMI_DOWN_S:.0f}s"
            elif kind == "cut_ami":
                detail = f"{self.proxy.cut()} connection(s) cut"
            elif kind == "half_open_ami":
                detail = f"{self.proxy.half_open()} connection(s) stalled"
            elif kind == "restart_asterisk":
                await asyncio.to_thread(self.sandbox.restart_asterisk)
                detail = "booted"
            elif kind == "drop_files":
                self._drop_batches += 1
                hostile, names = await campaign_files.drop_files(self.lab, rng, self._drop_batches)
                self._dropped += names
                detail = f"{len(names)} files, hostile campaign {hostile}"
                asyncio.create_task(self._feed_hostile(hostile))
            elif kind == "edit_files":
                detail = await campaign_files.edit_files(self.lab, rng, self._dropped)
            elif kind == "fuzz_api":
                calls = await hostile_api.fuzz(self.lab, rng, self.record.leaked.append)
                self.record.api += calls
                slowest = max(calls, key=lambda c: c.elapsed_s)
                detail = " ".join(f"{k}:{v}" for k, v in sorted(Counter(str(c.status) for c in calls).items()))
                detail += f"; slowest {slowest.name!r} {slowest.elapsed_s:.1f}s"
                detail += "".join(f"; {c.name!r} no answer ({c.detail[:60]})" for c in calls if c.status is None)
            elif kind == "api_leads":
                calls = await hostile_api.add_api_leads(self.lab)
                self.record.api += calls
                detail = " ".join(f"{c.status}" for c in calls)
            elif kind == "dnc_add":
                await self._dialer("dnc", "add", "--as-is", *self.lab.dnc_during)
                since = time.time()
                for number in self.lab.dnc_during:
                    self.record.numbers.forbid(number, "put on the do-not-call list mid-run", since)
                detail = f"{len(self.lab.dnc_during)} numbers listed"
        except Exception as exc:  # a fault the harness could not inject is reported, not fatal
            detail = f"{detail} FAILED: {type(exc).__name__}: {exc}"
        ended = time.time()
        self.record.faults.append(FaultEvent(kind, started, ended, detail))
        self.say(f"[chaos] +{started - self.record.started_at:6.1f}s {kind:<16} {ended - started:5.1f}s {detail}")

    async def _feed_hostile(self, campaign: str) -> None:
        """Give the hostile dropped campaign a lead: if its file was accepted, its Originate
        carries the injected action and the canary rings at the carrier."""
        assert self.lab is not None and self.record is not None
        await asyncio.sleep(4.0)
        number = f"60000{random.Random(campaign).randrange(10000, 99999)}"
        self.record.numbers.allow(number, campaign)
        self.record.api += await hostile_api.add_api_leads(self.lab, [(campaign, number, "hostile file")])

    async def _dialer(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        assert self.lab is not None
        argv = [sys.executable, "-m", "dialer", *args, "--config", str(self.lab.config)]
        return await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, timeout=timeout, cwd=self.lab.dir, env=self.env
        )

    async def _python(self, code: str, *args: str) -> str:
        """Run `code` with the daemon's checkout; its stdout."""
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
            cwd=self.workdir, env=self.env,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"python -c failed: {result.stderr[-2000:]}")
        return result.stdout

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> ChaosResult:
        proxy_port = await self.proxy.start()
        self.lab = lab = new_lab(self.workdir, self.seed, self.leads, free_port(), proxy_port)
        trunks = await self._python(
            "from dialer.config.models import DialerConfig; print('trunks' in DialerConfig.model_fields)"
        )
        write_lab(lab, self.state, trunks_supported=trunks.strip() == "True")
        await self._python(SEED_HISTORY, str(lab.db), CHAOS, str(HISTORY_ANSWERED))
        for args in (
            ("dnc", "add", "--as-is", *lab.dnc_before),
            ("dnc", "add", GUARD_DNC_NATIONAL),
            ("dnc", "add", GUARD_DNC_E164),
            ("leads", "import", CHAOS, str(lab.dir / "chaos-leads.csv")),
            ("leads", "import", GUARD, str(lab.dir / "guard-leads.csv")),
        ):
            result = await self._dialer(*args)
            if result.returncode not in (0, 1):
                raise RuntimeError(f"dialer {' '.join(args[:3])} failed: {result.stderr[-2000:]}")
        schedule = fault_plan.plan(self.seed, self.duration_s, self.faults_per_minute)
        self.record = record = RunRecord(
            seed=self.seed,
            started_at=time.time(),
            ended_at=0.0,
            numbers=lab.numbers,
            retry_rules=lab.retry_rules(),
            ring_timeout_s=RING_TIMEOUT_S,
            cps_limit=lab.cps_limit,
            cps_source=lab.cps_source,
            abandon_limit=0.03,
            history_answered=HISTORY_ANSWERED,
        )
        self.say(f"[chaos] seed {self.seed}: {self.leads} leads, {len(schedule)} planned events over "
                 f"{self.duration_s:.0f}s, lab in {lab.dir}")
        self._spawn()
        background = [asyncio.create_task(self._poll_health()), asyncio.create_task(self._supervise())]
        try:
            chaos_start = time.time()
            tasks = []
            for planned in schedule:
                await asyncio.sleep(max(0.0, chaos_start + planned.at - time.time()))
                tasks.append(asyncio.create_task(self._fault(planned)))
            await asyncio.sleep(max(0.0, chaos_start + self.duration_s - time.time()))
            await asyncio.gather(*tasks)
            await self._finish()
        finally:
            self._stop_polling.set()
            await asyncio.gather(*background, return_exceptions=True)
            async with self._daemon_lock:
                if self._proc is not None and self._proc.poll() is None:
                    await self._kill("final_stop")
            await self.proxy.stop()
        record.ended_at = time.time()
        await asyncio.sleep(1.0)  # SIPp's last lines
        return self._verdicts()

    async def _finish(self) -> None:
        """Wait for the leads to be done, stop cleanly, then a last start that reconciles."""
        assert self.lab is not None and self.record is not None
        deadline = time.time() + self.finish_s
        while time.time() < deadline and _open_leads(self.lab.db) > 0:
            await asyncio.sleep(1.0)
        async with self._daemon_lock:
            self._expected_exit = True
            if self._proc is not None and self._proc.poll() is None:
                assert self._life is not None
                self._life.stop_requested_at = time.time()
                self._proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(self._proc.wait, 40)
                except subprocess.TimeoutExpired:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                    await asyncio.to_thread(self._proc.wait)
                self._ended("final_stop")
            # The last reconcile: a start that closes or adopts whatever is still open.
            self._spawn(until_done=True)
            self._expected_exit = True
            try:
                await asyncio.to_thread(self._proc.wait, self.reconcile_s)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self._life.stop_requested_at = time.time()  # type: ignore[union-attr]
                self._proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                try:
                    await asyncio.to_thread(self._proc.wait, 30)  # type: ignore[union-attr]
                except subprocess.TimeoutExpired:
                    os.killpg(self._proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
                    await asyncio.to_thread(self._proc.wait)  # type: ignore[union-attr]
            self._ended("final_stop")

    def _verdicts(self) -> ChaosResult:
        assert self.lab is not None and self.record is not None
        record, lab = self.record, self.lab
        logs = [Path(d.log) for d in record.daemons]
        record.blind = blind_spans(record, logs)
        for path in logs:
            if lab.secret_marker in path.read_text(errors="replace"):
                record.leaked.append(f"daemon log {path.name}")
        attempts, leads = read_database(lab.db)
        carrier = read_carrier_events(self.state)
        agents = read_agent_events(self.state)
        verdicts = judge(record, carrier, agents, attempts, leads, {CHAOS, GUARD})
        invites = [e for e in carrier if e.event == "invite" and e.at is not None and e.at >= record.started_at]
        dialed = {e.number for e in invites}
        figures: dict[str, object] = {
            "seed": self.seed,
            "wall_s": round(record.ended_at - record.started_at, 1),
            "faults": dict(sorted(Counter(f.kind for f in record.faults).items())),
            "invites": len(invites),
            "numbers_dialed": len(dialed),
            "answered_at_carrier": sum(1 for e in carrier if e.event == "answered" and (e.at or 0) >= record.started_at),
            "attempts_in_db": len(attempts),
            "leads_done": sum(1 for l in leads if l.state == "done" and l.campaign in (CHAOS, GUARD)),
            "leads_total": sum(1 for l in leads if l.campaign in (CHAOS, GUARD)),
            "controls_dialed": sorted(dialed & lab.controls),
            "invites_per_10s": " ".join(
                str(sum(1 for e in invites if k <= (e.at or 0) - record.started_at < k + 10))
                for k in range(0, int(record.ended_at - record.started_at) + 1, 10)
            ),
            "daemon_starts": len(record.daemons),
            "outcomes": dict(sorted(Counter(a.outcome or "-" for a in attempts if a.phone in lab.numbers.campaign_of).items())),
        }
        return ChaosResult(record, verdicts, lab, figures)


def _last_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    for line in reversed(lines[-200:]):
        if any(word in line for word in ("error", "Error", "Traceback", "exception")):
            return line[:300]
    return lines[-1][:300] if lines else ""


def _log_events(path: Path, names: set[str]) -> list[tuple[float, str]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") in names and "timestamp" in entry:
            try:
                found.append((datetime.fromisoformat(str(entry["timestamp"])).timestamp(), str(entry["event"])))
            except ValueError:
                continue
    return found


def blind_spans(record: RunRecord, logs: list[Path]) -> list[tuple[float, float]]:
    """From each fault (or unplanned exit) to the daemon's next finished reconcile."""
    seen = sorted(t for path in logs for t, _ in _log_events(path, {"reconcile.done"}))
    starts = [f.started_at for f in record.faults if f.kind in ("kill_daemon", "cut_ami", "half_open_ami", "restart_asterisk")]
    starts += [d.ended_at for d in record.daemons if d.ended_at is not None and d.ended_by is None]
    spans = []
    for start in starts:
        after = [t for t in seen if t > start]
        spans.append((start, after[0] if after else start + BLIND_FALLBACK_S))
    return spans


def _open_leads(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM leads JOIN campaigns ON campaigns.id = leads.campaign_id "
                    "WHERE campaigns.name IN (?, ?) AND leads.state != 'done'",
                    (CHAOS, GUARD),
                ).fetchone()[0]
            )
    except sqlite3.Error:
        return 1


def _epoch(value: object) -> float | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment.timestamp() if moment.tzinfo else moment.replace(tzinfo=UTC).timestamp()


def read_database(db: Path) -> tuple[list[AttemptRow], list[LeadRow]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        columns = {row[1] for row in conn.execute("PRAGMA table_info(call_attempts)")}
        cut = "a.cut_short" if "cut_short" in columns else "0"
        attempts = [
            AttemptRow(
                id=row["id"], campaign=row["campaign"], phone=row["phone"], state=row["state"],
                outcome=row["outcome"], dialed_at=_epoch(row["dialed_at"]), ended_at=_epoch(row["ended_at"]),
                cut_short=bool(row["cut"]),
            )  # fmt: skip
            for row in conn.execute(
                f"SELECT a.id, c.name AS campaign, a.phone, a.state, a.outcome, a.dialed_at, a.ended_at, {cut} AS cut "
                "FROM call_attempts a JOIN campaigns c ON c.id = a.campaign_id"
            )
        ]
        leads = [
            LeadRow(
                id=row["id"], campaign=row["campaign"], phone=row["phone"], state=row["state"],
                attempts=row["attempts"], final_outcome=row["final_outcome"], final_reason=row["final_reason"],
            )  # fmt: skip
            for row in conn.execute(
                "SELECT l.id, c.name AS campaign, l.phone, l.state, l.attempts, l.final_outcome, l.final_reason "
                "FROM leads l JOIN campaigns c ON c.id = l.campaign_id"
            )
        ]
    return attempts, leads
