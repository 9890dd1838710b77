"""What a running sandbox is: written to `<workdir>/state.json` (mode 0600)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dialer.sandbox.ports import SandboxPorts

STATE_FILE = "state.json"
CARRIER_TRUNK = "PJSIP/{number}@carrier"


@dataclass(frozen=True)
class AmiAccess:
    host: str
    port: int
    username: str
    secret: str


@dataclass(frozen=True)
class AgentPhone:
    id: str
    interface: str  # what QueueAdd takes, e.g. PJSIP/agent1


@dataclass(frozen=True)
class SandboxState:
    instance: str
    workdir: str
    root: str  # the cached Debian root Asterisk runs in (chroot)
    instance_dir: str  # host path of this instance's Asterisk dirs inside the root
    ports: SandboxPorts
    ami: AmiAccess
    agents: list[AgentPhone]
    pids: dict[str, int]  # "asterisk", "carrier", "agents"
    carrier_trunk: str  # format with number=...
    carrier_events: str  # SIPp <log> lines, see dialer.sandbox.events
    agent_events: str
    asterisk_log: str  # Asterisk's messages.log
    asterisk_output: str  # Asterisk's stdout/stderr
    carrier_output: str  # SIPp's stderr and error trace
    agents_output: str
    started_at: float  # epoch seconds
    extra: dict[str, Any] = field(default_factory=dict)

    def dial_string(self, number: str) -> str:
        return self.carrier_trunk.format(number=number)

    @property
    def sounds_dir(self) -> str:
        """Host path of the directory Asterisk plays rendered prompts from (the dialer's ivr.sounds_dir)."""
        return str(Path(self.instance_dir) / "sounds")

    @property
    def asterisk_sounds_dir(self) -> str:
        """The same directory inside the chroot, as Asterisk names it (the dialer's ivr.asterisk_sounds_dir)."""
        return "/" + str(Path(self.sounds_dir).relative_to(self.root))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ports"] = self.ports.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SandboxState":
        values = dict(data)
        values["ports"] = SandboxPorts.from_dict(data["ports"])
        values["ami"] = AmiAccess(**data["ami"])
        values["agents"] = [AgentPhone(**agent) for agent in data["agents"]]
        values["pids"] = {name: int(pid) for name, pid in data["pids"].items()}
        return cls(**values)


def write_state(path: Path, state: SandboxState) -> None:
    """Write atomically with mode 0600: the file holds the AMI secret."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(state.to_dict(), out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_state(path: Path) -> SandboxState:
    return SandboxState.from_dict(json.loads(path.read_text(encoding="utf-8")))
