"""A customer calling into the sandbox's Asterisk (its `[dialer-inbound]`): one SIPp UAC call.

The sandbox's carrier SIPp only answers; an inbound call is a second, short-lived
SIPp running `scenarios/inbound.xml` from a port of the caller's choosing. Asterisk
takes it as the carrier (identified by address), as a real carrier's call would be.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dialer.sandbox.ports import sipp_control_port, sipp_media_port
from dialer.sandbox.processes import port_in_use
from dialer.sandbox.state import SandboxState

SCENARIO = Path(__file__).parent / "scenarios" / "inbound.xml"


@dataclass
class InboundCall:
    process: subprocess.Popen[bytes]
    log: Path
    errors: Path

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def events(self) -> list[str]:
        try:
            return [line.split()[0] for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except FileNotFoundError:
            return []


def from_header(number: str | None, name: str | None = None) -> str:
    """A From header value for `number` (None: no user part at all, as some carriers send)."""
    uri = f"<sip:{number}@127.0.0.1>" if number is not None else "<sip:127.0.0.1>"
    return f"{name} {uri}" if name is not None else uri


def _scenario(state: SandboxState, workdir: Path, name: str, key: str | None, key_after_s: float) -> Path:
    if key is None:
        return SCENARIO
    if key not in "0123456789":
        raise ValueError(f"a key 0-9, got {key!r}")
    # The carrier's key-press pcaps (dialer.sandbox.media), made when the sandbox started.
    press = Path(state.workdir) / "media" / f"dtmf-1-{key}.pcap"
    block = (
        f'  <pause milliseconds="{int(key_after_s * 1000)}"/>\n'
        f'  <nop>\n    <action>\n      <exec play_pcap_audio="{press}"/>\n'
        '      <log message="dtmf [call_id] [timestamp]"/>\n    </action>\n  </nop>\n'
    )
    path = workdir / f"inbound-{name}.xml"
    path.write_text(SCENARIO.read_text().replace("<!--KEY_PRESS-->", block))
    return path


def free_port_block(size: int = 5, tries: int = 50) -> int:
    """A UDP port p with p..p+size-1 free now, from the system's ephemeral range: SIPp binds
    its SIP port, control port (+1) and media ports (+2, +4), and the fixed sandbox port
    offsets of parallel test runs stay clear of that range."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + size > 65535:
            continue
        if all(not port_in_use("udp", p) for p in range(port, port + size)):
            return port
    raise OSError(f"no {size} free UDP ports in a row")


def call_in(
    state: SandboxState, *, did: str, from_value: str, talk_s: float, workdir: Path, name: str,
    port: int | None = None,
    key: str | None = None, key_after_s: float = 0.0,
) -> InboundCall:
    """Start one inbound call to `did`; the caller hangs up `talk_s` seconds after the answer
    (`key`: pressed `key_after_s` seconds after the answer, the talk time counted after it)."""
    log = workdir / f"inbound-{name}.log"
    errors = workdir / f"inbound-{name}.errors"
    port = free_port_block() if port is None else port
    argv = [
        "sipp", "127.0.0.1:" + str(state.ports.sip),
        "-sf", str(_scenario(state, workdir, name, key, key_after_s)),
        "-i", "127.0.0.1",
        "-p", str(port),
        "-cp", str(sipp_control_port(port)),
        "-mp", str(sipp_media_port(port)),
        "-m", "1",
        "-nostdin",
        "-aa",
        "-set", "did", did,
        "-set", "from", from_value,
        "-d", str(int(talk_s * 1000)),
        "-trace_logs", "-log_file", str(log),
        "-trace_err", "-error_file", str(errors),
        "-timeout", str(int(talk_s + 120)),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return InboundCall(process, log, errors)
