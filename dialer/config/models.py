"""Pydantic models for `config/dialer.yaml` and `campaigns/*.yaml`.

The models only describe and validate values; reading files (and mapping a
validation error back to file and line) is `dialer.config.loader`'s job.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in an ops team's YAML must not be ignored.
    model_config = ConfigDict(extra="forbid")


class AmiServer(_Strict):
    name: str = "default"
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str
    secret: SecretStr | None = None
    secret_file: Path | None = None
    secret_env: str | None = None
    connect_timeout: float = Field(5.0, gt=0)
    action_timeout: float = Field(10.0, gt=0)
    ping_interval: float = Field(10.0, gt=0)

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


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class AgentConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = None
    interface: str = Field(description="Asterisk device, e.g. PJSIP/agent1")
    queues: list[str] = Field(min_length=1)
    penalty: int = Field(0, ge=0)


class DialerConfig(_Strict):
    ami: list[AmiServer] = Field(min_length=1, max_length=1)
    database: DatabaseConfig = DatabaseConfig()
    campaign_dir: Path = Path("campaigns")
    logging: LoggingConfig = LoggingConfig()
    agents: list[AgentConfig] = []
    tick_interval: float = Field(0.5, gt=0, le=10)
    """How often the main loop re-evaluates pacing, in seconds."""

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, agents: list[AgentConfig]) -> list[AgentConfig]:
        seen: set[str] = set()
        for agent in agents:
            if agent.id in seen:
                raise ValueError(f"agent id {agent.id!r} appears twice")
            seen.add(agent.id)
        return agents


class CampaignType(str, Enum):
    telemarketing = "telemarketing"
    survey = "survey"
    callback = "callback"


class DialingMode(str, Enum):
    progressive = "progressive"
    ratio = "ratio"
    predictive = "predictive"


MIN_RING_SECONDS = 15


class DialingConfig(_Strict):
    mode: DialingMode = DialingMode.progressive
    ring_timeout: int = Field(25, ge=1, le=120, description="seconds a customer's phone rings")
    allow_short_ring: bool = Field(
        False, description="allow ring_timeout under 15 s (test labs only: the rules want 15 s or more)"
    )
    max_lines: int = Field(10, ge=1, le=1000, description="calls in progress at most")
    ratio: float = Field(1.0, ge=1.0, le=5.0, description="lines per free agent in ratio mode")
    agent_wait: int = Field(
        2, ge=1, le=30,
        description="seconds an answered customer waits for an agent before the abandon message",
    )

    @model_validator(mode="after")
    def _ring_long_enough(self) -> "DialingConfig":
        if self.ring_timeout < MIN_RING_SECONDS and not self.allow_short_ring:
            raise ValueError(
                f"ring_timeout {self.ring_timeout} is under {MIN_RING_SECONDS} s; rules for automated "
                "calling want at least 15 s (set allow_short_ring: true only in a test lab)"
            )
        return self


class Campaign(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    type: CampaignType
    enabled: bool = True
    trunk: str = Field(description="dial string template, e.g. PJSIP/{number}@carrier")
    caller_id: str
    queue: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    abandon_message: str = Field(
        "dialer-abandon", description="sound file played when no agent is free in time"
    )
    dialing: DialingConfig = DialingConfig()

    @field_validator("trunk")
    @classmethod
    def _trunk_has_number(cls, trunk: str) -> str:
        if "{number}" not in trunk:
            raise ValueError("must contain {number}, e.g. PJSIP/{number}@carrier")
        if "/" not in trunk.split("{number}")[0]:
            raise ValueError("must start with a channel technology, e.g. PJSIP/")
        return trunk

    def dial_string(self, number: str) -> str:
        return self.trunk.replace("{number}", number)
