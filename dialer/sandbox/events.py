"""What the SIPp carrier and agent phones saw: the integration tests' ground truth.

Each scenario writes one line per event with SIPp's <log> action (formats in
`scenarios/carrier.xml` and `scenarios/agent.xml`), ending with SIPp's own
`[timestamp]` (date, time, epoch seconds: `at`; lines written by an older
scenario have none). Parsing is pure; the `read_*` functions only add reading
the file named in the sandbox state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dialer.sandbox.state import SandboxState

CARRIER_EVENTS = frozenset(
    {"invite", "ringing", "answered", "final", "cancelled", "bye_sent", "bye_received", "dtmf"}
)
AGENT_EVENTS = frozenset({"invite", "headers", "answered", "cancelled", "bye_received"})


@dataclass(frozen=True)
class CarrierEvent:
    event: str
    number: str
    call_id: str
    status: int | None = None  # the SIP final status, on `final` only
    key: str | None = None  # the DTMF key sent, on `dtmf` only ("none": a slot left silent)
    at: float | None = field(default=None, compare=False)  # epoch seconds, SIPp's clock


@dataclass(frozen=True)
class AgentEvent:
    event: str
    agent: str
    call_id: str
    attempt: str | None = None  # X-Dialer-Attempt, on `invite` only (None if absent)
    headers: dict[str, str] = field(default_factory=dict, compare=False)
    """On `headers` only: campaign, tier, customer (the X-Dialer-* screen-pop headers; "" if absent)."""
    at: float | None = field(default=None, compare=False)  # epoch seconds, SIPp's clock


class EventLogError(ValueError):
    pass


# SIPp's [timestamp]: "2026-11-30<TAB>12:55:58.292209<TAB>1796043358.292209".
_TIMESTAMP = (re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), re.compile(r"^[0-9:.]+$"), re.compile(r"^[0-9]+\.[0-9]+$"))


def _split(line: str) -> tuple[list[str], float | None]:
    """The line's fields without its trailing SIPp timestamp, and that timestamp (epoch seconds)."""
    fields = line.split()
    tail = fields[-3:]
    if len(fields) >= 4 and all(pattern.match(value) for pattern, value in zip(_TIMESTAMP, tail)):
        return fields[:-3], float(tail[2])
    return fields, None


def _complete_lines(text: str) -> list[str]:
    # SIPp may be half-way through writing the last line: only a line with its
    # newline is known to be whole.
    lines = text.split("\n")
    return [line for line in lines[:-1] if line.strip()]


def parse_carrier_log(text: str) -> list[CarrierEvent]:
    events = []
    for lineno, line in enumerate(_complete_lines(text), start=1):
        fields, at = _split(line)
        if not fields or fields[0] not in CARRIER_EVENTS:
            raise EventLogError(f"carrier log line {lineno}: unknown event: {line!r}")
        if fields[0] == "final":
            if len(fields) != 4 or not fields[2].isdigit():
                raise EventLogError(f"carrier log line {lineno}: want 'final NUMBER STATUS CALL-ID': {line!r}")
            events.append(
                CarrierEvent(event="final", number=fields[1], call_id=fields[3], status=int(fields[2]), at=at)
            )
        elif fields[0] == "dtmf":
            if len(fields) != 4:
                raise EventLogError(f"carrier log line {lineno}: want 'dtmf NUMBER KEY CALL-ID': {line!r}")
            events.append(CarrierEvent(event="dtmf", number=fields[1], call_id=fields[3], key=fields[2], at=at))
        else:
            if len(fields) != 3:
                raise EventLogError(f"carrier log line {lineno}: want 'EVENT NUMBER CALL-ID': {line!r}")
            events.append(CarrierEvent(event=fields[0], number=fields[1], call_id=fields[2], at=at))
    return events


def parse_agent_log(text: str) -> list[AgentEvent]:
    events = []
    for lineno, line in enumerate(_complete_lines(text), start=1):
        fields, at = _split(line)
        if not fields or fields[0] not in AGENT_EVENTS:
            raise EventLogError(f"agent log line {lineno}: unknown event: {line!r}")
        if fields[0] == "invite" and len(fields) in (3, 4):
            attempt = fields[3] if len(fields) == 4 else None
            events.append(AgentEvent(event="invite", agent=fields[1], call_id=fields[2], attempt=attempt, at=at))
        elif fields[0] == "headers" and len(fields) >= 3 and all("=" in f for f in fields[3:]):
            values = dict(f.split("=", 1) for f in fields[3:])
            events.append(AgentEvent(event="headers", agent=fields[1], call_id=fields[2], headers=values, at=at))
        elif fields[0] not in ("invite", "headers") and len(fields) == 3:
            events.append(AgentEvent(event=fields[0], agent=fields[1], call_id=fields[2], at=at))
        else:
            raise EventLogError(f"agent log line {lineno}: malformed: {line!r}")
    return events


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def read_carrier_events(state: SandboxState) -> list[CarrierEvent]:
    return parse_carrier_log(_read(state.carrier_events))


def read_agent_events(state: SandboxState) -> list[AgentEvent]:
    return parse_agent_log(_read(state.agent_events))
