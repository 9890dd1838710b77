"""The agent desk's state as its pages read it; the daemon's desk (dialer.daemon.desk) changes it.

Shared by the daemon, which keeps it from AMI events and agents' requests, and
the desk pages (dialer.http.desk_pages), which show it: neither imports the other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from dialer.config.models import AgentConfig

PAUSE_REASONS = ("break", "lunch", "meeting", "training", "technical", "other")
"""What an agent may give as a pause reason: a fixed list, so nothing typed reaches AMI."""
MONITOR_MODES = {"listen": "listen", "whisper": "whisper", "barge": "barge"}


class DeskRefused(Exception):
    """The request cannot be done now; the message is for the user (HTTP 409)."""


@dataclass
class DeskCall:
    attempt: str
    """The id the agent records carry: the outbound attempt's, or an inbound caller channel's Uniqueid."""
    campaign: str
    lead_id: int | None
    """None: an inbound caller the dialer does not know (no lead to give a disposition for)."""
    pop: dict[str, Any] | None
    rang_at: float
    zones: list[str] = field(default_factory=list)
    """The customer's time zones (own, else the number's, else the campaign's): the callback picker's."""
    connected: bool = False
    ended: bool = False
    disposition: str | None = None
    callback_local: str | None = None
    inbound: InboundOnDesk | None = None
    """Set for a customer calling the campaign's number (dialer.inbound); None: an outbound call."""

    @property
    def call_id(self) -> str:
        return self.inbound.id if self.inbound is not None else self.attempt


@dataclass(frozen=True)
class InboundOnDesk:
    """What the desk shows of an inbound call besides the screen pop."""

    id: str
    """The inbound call's own id (`in-...`), as in `GET /agents/{id}/current` and the DialerScreenPop."""
    caller: str | None
    """The caller's number as recognised; None: withheld or not a number."""
    answers_attempt: str | None
    answers_outcome: str | None
    """The attempt that did not reach this customer and its outcome (abandoned, no_answer ...), if any."""


@dataclass
class DeskAgent:
    config: AgentConfig
    state: str = "logged_out"
    since: float = 0.0
    pause_reason: str | None = None
    call: DeskCall | None = None
    """The call on the phone, or the last one until its disposition and ready."""
    wrapup_campaign: str | None = None
    wrapup_started: float | None = None
    wrapup_task: asyncio.Task[None] | None = None
    learned_wrapups: list[float] = field(default_factory=list)
    last_disposition: str | None = None
    pop_version: int = 0
    """Counts the call views pushed to this agent's pages: a page whose feed connects with the
    version it was rendered at gets no fresh copy (which would wipe what the agent is typing)."""
