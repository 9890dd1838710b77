"""A real Asterisk 22 with SIPp as carrier and agent phones, on 127.0.0.1.

`Sandbox(workdir).up()` starts (or reuses) one instance and returns its
`SandboxState`; `down()` stops what `up()` started, by pid. The processes run
in their own sessions, so `dialer sandbox up` can exit and leave them running.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dialer.sandbox import processes
from dialer.sandbox.errors import SandboxError, SandboxStartError
from dialer.sandbox.media import write_carrier_scenario
from dialer.sandbox.ports import SandboxPorts, sipp_control_port, sipp_media_port
from dialer.sandbox.render import (
    AMI_USERNAME,
    DEBIAN_DEFAULT_FILES,
    OPS_FILES,
    SANDBOX_FILES,
    agent_ids,
    render_sandbox_config,
    sandbox_values,
)
from dialer.sandbox.root import (
    INSTANCES_DIR,
    default_root_path,
    ensure_host_tools,
    ensure_root,
    modules_dir,
    require_root_user,
)
from dialer.sandbox.state import (
    CARRIER_TRUNK,
    STATE_FILE,
    AgentPhone,
    AmiAccess,
    SandboxState,
    read_state,
    write_state,
)

Progress = Callable[[str], None]

SCENARIOS = Path(__file__).parent / "scenarios"
# What /proc/<pid>/cmdline must contain for a pid to still be ours.
EXPECT = {"asterisk": "asterisk", "carrier": "carrier.xml", "agents": "agent.xml"}
BOOT_TIMEOUT_S = 60.0


def asterisk_conf_dir() -> Path:
    """The ops-facing config files: $DIALER_ASTERISK_CONF or the checkout's asterisk-conf/."""
    if env := os.environ.get("DIALER_ASTERISK_CONF"):
        return Path(env)
    return Path(__file__).resolve().parents[2] / "asterisk-conf"


def _quiet(message: str) -> None:
    pass


class Sandbox:
    def __init__(
        self,
        workdir: Path | str,
        ports: SandboxPorts = SandboxPorts(),
        agents: int = 3,
        instance: str | None = None,
        root: Path | str | None = None,
    ) -> None:
        if agents < 1:
            raise ValueError("a sandbox needs at least one agent phone")
        self.workdir = Path(workdir).resolve()
        self.ports = ports
        self.agent_count = agents
        # Derived from the workdir by default, so sandboxes in different
        # workdirs never share Asterisk directories inside the one root.
        self.instance = instance or "w" + hashlib.sha1(str(self.workdir).encode()).hexdigest()[:10]
        self.root = Path(root) if root is not None else default_root_path()
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def state_path(self) -> Path:
        return self.workdir / STATE_FILE

    @property
    def instance_dir(self) -> Path:
        """Host path of this instance's Asterisk directories (inside the root)."""
        return self.root / INSTANCES_DIR / self.instance

    def _chroot_path(self, host_path: Path) -> str:
        return "/" + str(host_path.relative_to(self.root))

    # -- reading ----------------------------------------------------------

    def state(self) -> SandboxState:
        """The state of the running sandbox; SandboxError if none was started here."""
        try:
            return read_state(self.state_path)
        except FileNotFoundError:
            raise SandboxError(f"no sandbox state in {self.state_path}: run `dialer sandbox up`") from None

    def _alive(self, state: SandboxState) -> dict[str, bool]:
        return {name: processes.is_alive(pid, EXPECT.get(name)) for name, pid in state.pids.items()}

    def status(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "workdir": str(self.workdir),
            "state_file": str(self.state_path),
            "instance": self.instance,
            "root": str(self.root),
        }
        if not self.state_path.exists():
            return {**base, "running": False, "processes": {}}
        state = self.state()
        alive = self._alive(state)
        return {
            **base,
            "instance": state.instance,
            "root": state.root,
            "running": all(alive.values()),
            "processes": {name: {"pid": pid, "alive": alive[name]} for name, pid in state.pids.items()},
            "ports": state.ports.to_dict(),
            "ami": {"host": state.ami.host, "port": state.ami.port, "username": state.ami.username},
            "agents": [agent.interface for agent in state.agents],
            "logs": {
                "asterisk": state.asterisk_log,
                "asterisk_output": state.asterisk_output,
                "carrier_events": state.carrier_events,
                "agent_events": state.agent_events,
            },
        }

    # -- stopping ---------------------------------------------------------

    def down(self) -> None:
        """Stop every process this sandbox started; safe to call when nothing runs."""
        pids: dict[str, int] = {}
        if self.state_path.exists():
            try:
                pids = self.state().pids
            except (ValueError, KeyError, TypeError):
                pids = {}
        pids.update({name: child.pid for name, child in self._children.items()})
        # SIPp first: its calls end with Asterisk's last BYEs unanswered otherwise.
        for name in sorted(pids, key=lambda n: n == "asterisk"):
            processes.terminate(pids[name], EXPECT.get(name))
        for child in self._children.values():
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children.clear()
        self.state_path.unlink(missing_ok=True)

    # -- starting ---------------------------------------------------------

    def up(self, progress: Progress | None = None) -> SandboxState:
        say = progress or _quiet
        if self.state_path.exists():
            try:
                existing = self.state()
            except (ValueError, KeyError, TypeError):
                existing = None
            if existing is not None and all(self._alive(existing).values()) and self._matches(existing):
                say(f"sandbox {existing.instance} already running (state in {self.state_path})")
                return existing
            say("stopping the previous sandbox first")
            self.down()

        require_root_user()
        ensure_host_tools(say)
        started = time.monotonic()
        ensure_root(self.root, say)
        clashes = [f"{proto}/{port}" for proto, port in self.ports.listening() if processes.port_in_use(proto, port)]
        if clashes:
            raise SandboxStartError(
                f"ports already in use on 127.0.0.1: {', '.join(clashes)} (another sandbox? try --port-offset)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            state = self._start(say)
            self._wait_ready(state, say)
        except BaseException:
            self.down()
            raise
        say(f"sandbox {state.instance} up in {time.monotonic() - started:.1f}s")
        return state

    def _matches(self, state: SandboxState) -> bool:
        return state.ports == self.ports and len(state.agents) == self.agent_count and state.root == str(self.root)

    def _start(self, say: Progress) -> SandboxState:
        inst = self.instance_dir
        for sub in ("etc", "run", "spool", "log", "lib", "lib/keys", "cache", "sounds"):
            (inst / sub).mkdir(parents=True, exist_ok=True)
        # A socket or pid file left by a killed Asterisk would confuse -rx.
        shutil.rmtree(inst / "run", ignore_errors=True)
        (inst / "run").mkdir()
        for old in (inst / "etc").iterdir():
            old.unlink()
        messages_log = inst / "log" / "messages.log"
        messages_log.unlink(missing_ok=True)

        secret = secrets.token_urlsafe(24)
        agents = agent_ids(self.agent_count)
        mods = modules_dir(self.root)
        if mods is None:
            raise SandboxStartError(f"no Asterisk modules in {self.root}")
        conf = asterisk_conf_dir()
        values = sandbox_values(self.ports, secret, self._chroot_path(inst), mods, f"dialer-sandbox-{self.instance}")
        files = render_sandbox_config(
            {name: (conf / name).read_text() for name in OPS_FILES},
            {name: (conf / "sandbox" / name).read_text() for name in SANDBOX_FILES},
            values,
            agents,
            self.ports.agents,
        )
        for name in DEBIAN_DEFAULT_FILES:
            debian = self.root / "etc" / "asterisk" / name
            if debian.is_file() and name not in files:
                files[name] = debian.read_text(errors="replace")
        for name, text in files.items():
            path = inst / "etc" / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)

        work = self.workdir
        outputs = {
            "asterisk": work / "asterisk.out",
            "carrier": work / "carrier.err",
            "agents": work / "agents.err",
        }
        events = {"carrier": work / "carrier-events.log", "agents": work / "agent-events.log"}
        errors = {"carrier": work / "carrier-errors.log", "agents": work / "agents-errors.log"}
        for path in [*outputs.values(), *events.values(), *errors.values()]:
            path.unlink(missing_ok=True)

        say("starting Asterisk")
        self._children["asterisk"] = processes.spawn(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n", "-C", self._asterisk_conf()],
            outputs["asterisk"],
        )
        say("starting SIPp carrier and agent phones")
        carrier_xml = write_carrier_scenario(SCENARIOS / "carrier.xml", work)
        for name, scenario, port in (
            ("carrier", "carrier.xml", self.ports.carrier),
            ("agents", "agent.xml", self.ports.agents),
        ):
            self._children[name] = processes.spawn(
                _sipp_argv(carrier_xml if name == "carrier" else SCENARIOS / scenario, port, events[name], errors[name]),
                outputs[name],
                stdout_too=False,  # SIPp redraws its statistics screen there every second
            )

        state = SandboxState(
            instance=self.instance,
            workdir=str(work),
            root=str(self.root),
            instance_dir=str(inst),
            ports=self.ports,
            ami=AmiAccess(host="127.0.0.1", port=self.ports.ami, username=AMI_USERNAME, secret=secret),
            agents=[AgentPhone(id=agent, interface=f"PJSIP/{agent}") for agent in agents],
            pids={name: child.pid for name, child in self._children.items()},
            carrier_trunk=CARRIER_TRUNK,
            carrier_events=str(events["carrier"]),
            agent_events=str(events["agents"]),
            asterisk_log=str(messages_log),
            asterisk_output=str(outputs["asterisk"]),
            carrier_output=str(outputs["carrier"]),
            agents_output=str(outputs["agents"]),
            started_at=time.time(),
        )
        # Written before the waits, so `dialer sandbox down` can stop a
        # start-up that was interrupted.
        write_state(self.state_path, state)
        return state

    def restart_asterisk(self, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """`core restart now`, as an ops team's restart does it: every call is cut and AMI
        connections drop. Returns once Asterisk is fully booted and AMI logins work again."""
        state = self.state()
        try:
            self._rx("core restart now", timeout_s=5.0)
        except subprocess.TimeoutExpired:
            pass  # the remote console may hang up on us mid-restart
        deadline = time.monotonic() + timeout_s
        # The old process must let go first, or the checks below would see it.
        processes.wait_for(lambda: not ami_login_works(state.ami, timeout_s=0.5), 10.0, interval_s=0.1)

        def booted() -> bool:
            try:
                return self._rx("core waitfullybooted", timeout_s=5.0).returncode == 0 and ami_login_works(state.ami)
            except subprocess.TimeoutExpired:
                return False

        if not processes.wait_for(booted, max(1.0, deadline - time.monotonic()), interval_s=0.5):
            raise SandboxError(f"Asterisk did not come back after a restart; see {state.asterisk_log}")

    def _asterisk_conf(self) -> str:
        return self._chroot_path(self.instance_dir / "etc" / "asterisk.conf")

    def _rx(self, command: str, timeout_s: float = 10.0) -> subprocess.CompletedProcess[str]:
        argv = ["chroot", str(self.root), "/usr/sbin/asterisk", "-C", self._asterisk_conf(), "-rx", command]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)

    def _fail(self, what: str, log: str) -> SandboxStartError:
        return SandboxStartError(f"sandbox start-up failed: {what}; see {log}")

    def _check_children(self, state: SandboxState) -> None:
        logs = {"asterisk": state.asterisk_output, "carrier": state.carrier_output, "agents": state.agents_output}
        for name, child in self._children.items():
            if child.poll() is not None:
                raise self._fail(f"{name} exited with status {child.returncode}", logs[name])

    def _wait_ready(self, state: SandboxState, say: Progress) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        ctl = self.instance_dir / "run" / "asterisk.ctl"

        def ctl_ready() -> bool:
            self._check_children(state)
            return ctl.exists()

        if not processes.wait_for(ctl_ready, BOOT_TIMEOUT_S):
            raise self._fail("Asterisk opened no control socket", state.asterisk_output)
        say("waiting for Asterisk to boot")
        remaining = max(1.0, deadline - time.monotonic())
        try:
            booted = self._rx("core waitfullybooted", timeout_s=remaining)
        except subprocess.TimeoutExpired:
            raise self._fail("Asterisk did not finish booting", state.asterisk_log) from None
        if booted.returncode != 0:
            raise self._fail(f"`core waitfullybooted` failed: {booted.stderr.strip()}", state.asterisk_log)

        endpoints = self._rx("pjsip show endpoints").stdout
        wanted = ["carrier", *(agent.id for agent in state.agents)]
        missing = [name for name in wanted if f" {name} " not in endpoints and f" {name}/" not in endpoints]
        if missing:
            raise self._fail(f"PJSIP endpoints not loaded: {', '.join(missing)}", state.asterisk_log)

        def ami_ok() -> bool:
            self._check_children(state)
            return ami_login_works(state.ami)

        if not processes.wait_for(ami_ok, max(1.0, deadline - time.monotonic()), interval_s=0.2):
            raise self._fail(f"AMI login on 127.0.0.1:{state.ami.port} failed", state.asterisk_log)

        for name, port, log in (
            ("carrier", state.ports.carrier, state.carrier_output),
            ("agents", state.ports.agents, state.agents_output),
        ):

            def listening(port: int = port) -> bool:
                self._check_children(state)
                return processes.port_in_use("udp", port)

            if not processes.wait_for(listening, max(1.0, deadline - time.monotonic())):
                raise self._fail(f"SIPp {name} is not listening on udp/{port}", log)
        say(f"Asterisk ready: AMI 127.0.0.1:{state.ami.port}, SIP 127.0.0.1:{state.ports.sip}")


def _sipp_argv(scenario: Path, port: int, events: Path, errors: Path) -> list[str]:
    return [
        "sipp",
        "-sf", str(scenario),
        "-i", "127.0.0.1",
        "-p", str(port),
        "-cp", str(sipp_control_port(port)),
        "-mp", str(sipp_media_port(port)),
        "-nostdin",
        # 200 OK to Asterisk's OPTIONS/INFO/NOTIFY/UPDATE outside the scenario.
        "-aa",
        "-trace_logs", "-log_file", str(events),
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip


def ami_login_works(ami: AmiAccess, timeout_s: float = 3.0) -> bool:
    """Log in to AMI and out again; True if Asterisk accepted the secret."""
    try:
        with socket.create_connection((ami.host, ami.port), timeout=timeout_s) as conn:
            reader = conn.makefile("rb")
            reader.readline()  # "Asterisk Call Manager/x.y.z"
            conn.sendall(
                (
                    f"Action: Login\r\nActionID: sandbox-ready\r\nUsername: {ami.username}\r\n"
                    f"Secret: {ami.secret}\r\nEvents: off\r\n\r\n"
                ).encode()
            )
            response = []
            while line := reader.readline():
                if line in (b"\r\n", b"\n"):
                    break
                response.append(line.decode(errors="replace").strip())
            conn.sendall(b"Action: Logoff\r\n\r\n")
            return "Response: Success" in response
    except OSError:
        return False
