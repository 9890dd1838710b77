"""What a chaos run did and what it read back: plain data the invariant checks take.

Times are epoch seconds on this machine's clock, the clock SIPp stamps its
events with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALWAYS = float("-inf")


@dataclass(frozen=True)
class Forbidden:
    """A number that must not be dialed from `since` on (ALWAYS: never)."""

    reason: str
    since: float = ALWAYS


@dataclass
class NumberPlan:
    """Every number the run may see at the carrier, and those it must never see."""

    campaign_of: dict[str, str] = field(default_factory=dict)
    """Lead number -> campaign, for every lead that may be dialed."""
    forbidden: dict[str, Forbidden] = field(default_factory=dict)
    """Numbers as the carrier would see them in an INVITE (each written form)."""
    talk_s: dict[str, int] = field(default_factory=dict)
    """For answering customers: how long they talk before hanging up."""

    def allow(self, number: str, campaign: str) -> None:
        self.campaign_of[number] = campaign

    def forbid(self, number: str, reason: str, since: float = ALWAYS) -> None:
        self.forbidden[number] = Forbidden(reason, since)


@dataclass(frozen=True)
class RetryRule:
    delay_s: float
    max_attempts: int


@dataclass(frozen=True)
class FaultEvent:
    kind: str
    started_at: float
    ended_at: float
    detail: str = ""


@dataclass(frozen=True)
class HealthSample:
    at: float
    ok: bool
    detail: str = ""


@dataclass
class DaemonLife:
    """One `dialer run` process, from spawn to exit."""

    number: int
    started_at: float
    log: str
    ended_at: float | None = None
    exit_code: int | None = None
    ended_by: str | None = None  # "kill_daemon", "final_stop", or None: it exited on its own
    stop_requested_at: float | None = None  # SIGTERM sent (the drain answers no health checks)
    last_error: str = ""


@dataclass(frozen=True)
class ApiCall:
    name: str
    at: float
    status: int | None  # None: no HTTP answer (connection refused or timed out)
    elapsed_s: float
    detail: str = ""


@dataclass(frozen=True)
class AttemptRow:
    id: str
    campaign: str
    phone: str
    state: str
    outcome: str | None
    dialed_at: float | None
    ended_at: float | None
    cut_short: bool = False


@dataclass(frozen=True)
class LeadRow:
    id: int
    campaign: str
    phone: str
    state: str
    attempts: int
    final_outcome: str | None
    final_reason: str | None


@dataclass
class RunRecord:
    seed: int
    started_at: float
    ended_at: float
    numbers: NumberPlan
    retry_rules: dict[str, dict[str, RetryRule]]
    """Campaign -> outcome -> rule, as its file gives them."""
    ring_timeout_s: float
    cps_limit: float
    cps_source: str  # "dialer.yaml trunks" or "default (trunk not listed)"
    abandon_limit: float
    history_answered: int
    """Live answers seeded into the campaign's abandon window before the run."""
    faults: list[FaultEvent] = field(default_factory=list)
    blind: list[tuple[float, float]] = field(default_factory=list)
    """Spans the daemon could not see Asterisk's events (daemon down, AMI lost, until
    its next login): calls that ended there may be closed as `interrupted`."""
    health: list[HealthSample] = field(default_factory=list)
    daemons: list[DaemonLife] = field(default_factory=list)
    api: list[ApiCall] = field(default_factory=list)
    startup_grace_s: float = 25.0
    leaked: list[str] = field(default_factory=list)
    """Places a planted secret showed up in (API answers, daemon logs)."""

    def restarts(self) -> list[tuple[float, float]]:
        return [(f.started_at, f.ended_at) for f in self.faults if f.kind == "restart_asterisk"]
