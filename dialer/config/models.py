"""Pydantic models for `config/dialer.yaml` and `campaigns/*.yaml`.

The models only describe and validate values; reading files (and mapping a
validation error back to file and line) is `dialer.config.loader`'s job.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dialer.ami.values import CallerId, HeaderValue, Interface, OptionalSound, QueueName, Trunk
from dialer.config.campaign_rules import (
    DEFAULT_DISPOSITIONS,
    DEFAULT_RETRIES,
    CallbackConfig,
    CallingHours,
    DispositionAction,
    EventKind,
    NumberRules,
    RetryConfig,
    RetryOutcome,
    check_disposition_codes,
)
from dialer.leads.phone_numbers import check_region
from dialer.config.ivr import AgiConfig, AmdConfig, IvrConfig
from dialer.config.tiers import DEFAULT_TIERS, CampaignTiers, TierConfig, check_ladder
from dialer.config.inbound import InboundConfig
from dialer.config.webhooks import WebhookConfig, check_webhooks
from dialer.core.outcomes import ABANDON_CEILING, DialingMode


def _each_once(items: list, names: list[str], what: str) -> list:
    """`items` unchanged if no name repeats; else the first repeated name is the error."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} appears twice")
        seen.add(name)
    return items


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in an ops team's YAML must not be ignored.
    model_config = ConfigDict(extra="forbid")


class AmiServer(_Strict):
    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: HeaderValue
    secret: SecretStr | None = None
    secret_file: Path | None = None
    secret_env: str | None = None
    connect_timeout: float = Field(5.0, gt=0)
    action_timeout: float = Field(10.0, gt=0)
    ping_interval: float = Field(10.0, gt=0)
    max_lines: int | None = Field(
        None, ge=1, le=10000, description="calls in progress at most on this server, all campaigns together"
    )
    trunks: list[str] = Field(
        default_factory=list,
        description="the trunks (names as under trunks:) this server carries; empty: every trunk",
    )

    @model_validator(mode="after")
    def _one_secret_source(self) -> "AmiServer":
        given = [s for s in (self.secret, self.secret_file, self.secret_env) if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of secret, secret_file, secret_env")
        return self

    def resolve_secret(self) -> str:
        """The secret's value; read at connect time so a rotated file is picked up."""
        if self.secret is not None:
            return self.secret.get_secret_value()
        if self.secret_file is not None:
            return self.secret_file.read_text().strip()
        value = os.environ.get(self.secret_env or "")
        if value is None:
            raise LookupError(f"environment variable {self.secret_env} is not set")
        return value


class DatabaseConfig(_Strict):
    url: str = "sqlite+aiosqlite:///var/dialer.db"
    """A relative SQLite path is relative to the config file's directory (see the loader)."""

    @field_validator("url")
    @classmethod
    def _url_parses(cls, url: str) -> str:
        try:
            make_url(url)
        except ArgumentError:
            raise ValueError("not a database URL, e.g. sqlite+aiosqlite:///var/dialer.db") from None
        return url


class SeveralDaemonsConfig(_Strict):
    """Several daemons on one PostgreSQL: each campaign is dialed by the daemon holding its lease (dialer.core.ownership)."""

    id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.:@-]{1,128}$",
        description="this daemon's name in the leases; unset: host name, process id and a random part",
    )
    takeover_after: float = Field(
        15.0, ge=3, le=600, description="seconds without a heartbeat before another daemon takes a campaign over"
    )
    heartbeat: float = Field(3.0, gt=0, le=200, description="seconds between lease renewals")

    @model_validator(mode="after")
    def _heartbeats_per_lease(self) -> SeveralDaemonsConfig:
        if self.takeover_after < 3 * self.heartbeat:
            raise ValueError("takeover_after must be at least three heartbeats")
        return self


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class AgentConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = None
    interface: Interface = Field(description="Asterisk device, e.g. PJSIP/agent1")
    queues: list[QueueName] = Field(min_length=1)
    penalty: int = Field(0, ge=0)
    server: str | None = Field(
        None, description="the name of the AMI server (under ami:) the phone registers on; default the first"
    )


class WeakApiToken(LookupError):
    """The API token is too weak (short, or with spaces) to guard the API; a LookupError so that every
    caller handling an unreadable token (start-up, each request, the CLI) handles it."""


class HttpConfig(_Strict):
    """The control API, /metrics and the health checks (one HTTP server in the daemon)."""

    MIN_TOKEN_LENGTH: ClassVar[int] = 16
    """Characters an API token needs at least (guessing 16 random ones is out of reach)."""

    bind: str = "127.0.0.1"
    port: int = Field(8321, ge=0, le=65535, description="0 picks a free port (tests)")
    token: SecretStr | None = None
    token_file: Path | None = None
    token_env: str | None = None
    metrics_need_token: bool = Field(
        False, description="ask for the token on /metrics too (health checks never need it)"
    )
    desk_users_file: Path | None = Field(
        None,
        description="agents' and supervisors' hashed secrets (`dialer desk set-secret`); "
        "with it the daemon serves /desk and keeps agents in wrap-up after each call",
    )

    @model_validator(mode="after")
    def _one_token_source(self) -> "HttpConfig":
        given = [s for s in (self.token, self.token_file, self.token_env) if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of token, token_file, token_env")
        return self

    @field_validator("token")
    @classmethod
    def _strong_inline_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None:
            try:
                cls._check_strength(token.get_secret_value(), "token")
            except WeakApiToken as exc:
                raise ValueError(str(exc)) from None
        return token

    @classmethod
    def _check_strength(cls, value: str, source: str) -> str:
        # The value itself is never echoed: messages go to logs and terminals.
        if len(value) < cls.MIN_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in value):
            raise WeakApiToken(
                f"{source} holds {len(value)} character(s); an API token needs at least {cls.MIN_TOKEN_LENGTH}, "
                "without spaces or control characters (e.g. `openssl rand -hex 24`)"
            )
        return value

    def resolve_token(self) -> str:
        """The token's value; read on each request so a rotated file is picked up.

        Raises OSError or LookupError (WeakApiToken for a weak one) when it cannot be used.
        """
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return self._check_strength(self.token_file.read_text().strip(), f"token_file {self.token_file}")
        value = os.environ.get(self.token_env or "")
        if not value:
            raise LookupError(f"environment variable {self.token_env} is not set")
        return self._check_strength(value, f"environment variable {self.token_env}")


class TrunkConfig(_Strict):
    """One carrier trunk's limits, shared by every campaign dialing through it."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.@:+#*/{}-]{1,128}$",
        description="the endpoint after '@' in a campaign's trunk (PJSIP/{number}@carrier: carrier), "
        "or the whole template when it has no '@'",
    )
    calls_per_second: float = Field(
        gt=0, le=1000, description="Originates a second at most, on average (the carrier's CPS limit)"
    )


class DialerConfig(_Strict):
    ami: list[AmiServer] = Field(min_length=1, max_length=64)
    """One or more Asterisk servers; several need a unique name each (dialer.core.servers spreads the calls)."""
    database: DatabaseConfig = DatabaseConfig()
    campaign_dir: Path = Path("campaigns")
    logging: LoggingConfig = LoggingConfig()
    agents: list[AgentConfig] = []
    tick_interval: float = Field(0.5, gt=0, le=10)
    """How often the main loop re-evaluates pacing, in seconds."""
    default_region: str | None = None
    """ISO country code for lead numbers written without +, unless the campaign sets its own."""
    drain_timeout: float = Field(30.0, ge=0, le=3600)
    """On SIGTERM, seconds calls in progress may take to finish before they are cut off."""
    http: HttpConfig | None = None
    """The control API; off when absent."""
    agi: AgiConfig = AgiConfig()
    """The FastAGI server the dialplan's IVR reaches (issue 6)."""
    ivr: IvrConfig = IvrConfig()
    """IVR flows and rendered prompts (issue 6)."""
    tiers: list[TierConfig] = Field(default_factory=lambda: list(DEFAULT_TIERS))
    """The customer tier ladder, top first by rank, with each tier's contact policy (docs/tiers.md)."""
    trunks: list[TrunkConfig] = []
    """Calls per second per trunk; a trunk not listed gets dialer.core.trunks.DEFAULT_CALLS_PER_SECOND."""
    daemons: SeveralDaemonsConfig | None = None
    """Set when several daemons share the database: campaign leases and takeover; absent: one daemon, no leases."""

    @field_validator("ami")
    @classmethod
    def _unique_servers(cls, servers: list[AmiServer]) -> list[AmiServer]:
        return _each_once(servers, [s.name for s in servers], "AMI server name")

    @field_validator("trunks")
    @classmethod
    def _unique_trunks(cls, trunks: list[TrunkConfig]) -> list[TrunkConfig]:
        return _each_once(trunks, [t.name for t in trunks], "trunk")

    def trunk_rates(self) -> dict[str, float]:
        return {t.name: t.calls_per_second for t in self.trunks}

    @field_validator("tiers")
    @classmethod
    def _tier_ladder(cls, tiers: list[TierConfig]) -> list[TierConfig]:
        return check_ladder(tiers)

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str | None) -> str | None:
        return None if region is None else check_region(region)

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, agents: list[AgentConfig], info: ValidationInfo) -> list[AgentConfig]:
        servers = [s.name for s in info.data.get("ami", [])]
        for n, agent in enumerate(agents):
            if agent.server is not None and servers and agent.server not in servers:
                raise ValueError(
                    f"agents[{n}] ({agent.id}) server: {agent.server!r} is not a server under ami: "
                    f"(known: {', '.join(servers)})"
                )
        if len(servers) > 1:
            # The daemon knows an agent by its interface in every server's events: two phones
            # named alike on two servers would be one agent to it.
            _each_once(agents, [a.interface.lower() for a in agents], "agent interface")
        return _each_once(agents, [a.id for a in agents], "agent id")

    def server_of(self, agent: AgentConfig) -> str:
        """The AMI server the agent's phone registers on."""
        return agent.server or self.ami[0].name


class CampaignType(str, Enum):
    telemarketing = "telemarketing"
    survey = "survey"
    callback = "callback"


MIN_RING_SECONDS = 15


class DialingConfig(_Strict):
    mode: DialingMode = DialingMode.progressive
    # Declared before ring_timeout so its validator can see it.
    allow_short_ring: bool = Field(
        False, description="allow ring_timeout under 15 s (test labs only: the rules want 15 s or more)"
    )
    ring_timeout: int = Field(25, ge=1, le=120, description="seconds a customer's phone rings")
    max_lines: int = Field(10, ge=1, le=1000, description="calls in progress at most")
    ratio: float = Field(1.0, ge=1.0, le=5.0, description="lines per free agent in ratio mode")
    agent_wait: int = Field(
        2, ge=1, le=30,
        description="seconds an answered customer waits for an agent before the abandon message",
    )
    abandon_target: float = Field(
        # Well under the 3 % ceiling: calls already ringing when the budget runs
        # out can still be abandoned, and small samples swing.
        0.02, gt=0, le=1, description="abandon rate the predictive mode aims at (fraction of live answers)"
    )
    abandon_limit: float = Field(ABANDON_CEILING, gt=0, le=1, description="hard ceiling on the abandon rate")
    abandon_window: Literal["30d", "24h"] = Field(
        "30d", description="rolling window of the abandon rate: 30 days (US) or 24 hours (UK)"
    )
    override_ceiling: bool = Field(
        False, description="allow abandon_limit above 3 % (only where the rules applying to you allow it)"
    )
    early_budget: bool = Field(
        # A campaign stopped by hand before its 100th answer keeps the rate it had then,
        # which one early abandon already puts over 3 %: a site that often does so turns it off.
        True,
        description="before 100 live answers, spend the abandon budget the campaign's leads will earn "
        "(false: stay progressive until the answers so far allow one abandon)",
    )

    @field_validator("ring_timeout")
    @classmethod
    def _ring_long_enough(cls, ring_timeout: int, info: ValidationInfo) -> int:
        if ring_timeout < MIN_RING_SECONDS and not info.data.get("allow_short_ring", False):
            raise ValueError(
                f"under {MIN_RING_SECONDS} s; rules for automated calling want at least "
                f"{MIN_RING_SECONDS} s (allow_short_ring: true allows it in a test lab)"
            )
        return ring_timeout

    @model_validator(mode="after")
    def _abandon_limits(self) -> "DialingConfig":
        if self.abandon_limit > ABANDON_CEILING and not self.override_ceiling:
            raise ValueError(
                f"abandon_limit {self.abandon_limit} is over {ABANDON_CEILING}; "
                "set override_ceiling: true only if the rules that apply to you allow it"
            )
        if self.abandon_target > self.abandon_limit:
            raise ValueError(f"abandon_target {self.abandon_target} is over abandon_limit {self.abandon_limit}")
        return self


class Campaign(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    type: CampaignType
    enabled: bool = True
    trunk: Trunk = Field(description="dial string template, e.g. PJSIP/{number}@carrier")
    caller_id: CallerId
    queue: QueueName
    abandon_message: OptionalSound = Field(
        "dialer-abandon", description="sound file played when no agent is free in time"
    )
    abandon_text: str | None = Field(
        None, min_length=1, max_length=1000,
        description="abandon message as text (who is calling, a number to call back); rendered to sound, "
        "and played instead of abandon_message",
    )
    ivr: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]+$", description="IVR flow (ivr/<flow>.yaml name) answered calls go to, not the queue"
    )
    amd: AmdConfig = AmdConfig()
    dialing: DialingConfig = DialingConfig()
    # Calling rules: see dialer/config/campaign_rules.py and docs/campaign-rules.md.
    calling_hours: CallingHours = CallingHours()
    numbers: NumberRules = NumberRules()
    retries: dict[RetryOutcome, RetryConfig] = dict(DEFAULT_RETRIES)
    dispositions: dict[str, DispositionAction] = dict(DEFAULT_DISPOSITIONS)
    callbacks: CallbackConfig = CallbackConfig()
    revisit: dict[EventKind, int] = Field({}, description="event kind -> days after the event to call")
    tiers: CampaignTiers = CampaignTiers()
    """Tier sources, routing to dedicated agents, lead order and revisit cadence (docs/tiers.md)."""
    script: str | None = Field(None, max_length=4000, description="what the agent says: shown in the screen pop")
    inbound: InboundConfig | None = None
    """Customers calling the caller ID (or `inbound.dids`) back reach this campaign's agents (dialer.inbound)."""
    wrapup_limit: float = Field(
        120.0, ge=1, le=3600, description="seconds an agent may stay in wrap-up after a call (agent desk) before ready"
    )
    webhooks: list[WebhookConfig] = Field([], max_length=16)
    """HTTP endpoints that get each disposition, signed (dialer.webhook_dispatcher, campaigns/README.md)."""

    @field_validator("webhooks")
    @classmethod
    def _webhooks(cls, webhooks: list[WebhookConfig], info: ValidationInfo) -> list[WebhookConfig]:
        # dispositions is declared above; when it failed its own check, codes are not compared.
        codes = info.data.get("dispositions")
        return check_webhooks(webhooks, None if codes is None else set(codes))

    @field_validator("dispositions")
    @classmethod
    def _disposition_codes(cls, codes: dict[str, DispositionAction]) -> dict[str, DispositionAction]:
        return check_disposition_codes(codes)

    @field_validator("revisit")
    @classmethod
    def _revisit_days(cls, revisit: dict[str, int]) -> dict[str, int]:
        for kind, days in revisit.items():
            if not 0 <= days <= 365:
                raise ValueError(f"{kind}: days must be within 0..365, got {days}")
        return revisit

    def dial_string(self, number: str) -> str:
        return self.trunk.replace("{number}", number)
