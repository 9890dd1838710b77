"""A campaign's disposition webhooks: where each disposition is POSTed, and with which secret.

Only describes and checks values; delivering is `dialer.webhook_dispatcher`'s job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEBHOOK_NAME = r"^[A-Za-z0-9_-]{1,64}$"
MAX_URL_LENGTH = 2000
CREDENTIAL_QUERY_NAMES = frozenset(
    {"token", "access_token", "api_key", "apikey", "key", "secret", "password", "passwd", "pwd", "auth", "sig",
     "signature"}
)
"""Query parameters refused in a webhook URL: what they hold would be logged and listed."""


class WebhookSecretUnavailable(LookupError):
    """The secret's file or variable is missing, unreadable or too weak; the message never holds the value."""


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL without credentials, whitespace or a fragment; returned as given."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("names no host")
    # The URL is logged and shown by `dialer webhooks list`: a password in it would leak there.
    if "@" in parts.netloc:
        raise ValueError("must not hold credentials (user:password@); the receiver checks the signature instead")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower().replace("-", "_") in CREDENTIAL_QUERY_NAMES:
            raise ValueError(
                f"query parameter {name[:40]!r} looks like a credential; the receiver checks the signature instead"
            )
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not hold a fragment (#...)")
    if port == 0:
        raise ValueError("port 0 is not a port")
    return url


class WebhookConfig(BaseModel):
    """One HTTP endpoint that gets a signed POST for each disposition it names (or every one)."""

    model_config = ConfigDict(extra="forbid")

    MIN_SECRET_LENGTH: ClassVar[int] = 16

    name: str = Field(pattern=WEBHOOK_NAME, description="names the endpoint in the report, the log and the CLI")
    url: str = Field(description="http:// or https:// URL the JSON body is POSTed to")
    dispositions: list[str] | None = Field(
        None, min_length=1, max_length=64, description="codes that are sent; absent: every disposition"
    )
    secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    secret_file: Path | None = None
    timeout: float = Field(10.0, gt=0, le=120, description="seconds one delivery try may take in all")
    max_attempts: int = Field(12, ge=1, le=100, description="tries before the delivery goes to the dead letters")
    first_retry: float = Field(10.0, gt=0, le=3600, description="seconds before the 2nd try; doubles each time")
    max_retry: float = Field(900.0, gt=0, le=86400, description="seconds between tries at most")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_webhook_url(url)

    @field_validator("secret_file")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        # A campaign file may be read from more than one directory (validate, the daemon's watcher).
        if path is not None and not path.is_absolute():
            raise ValueError("must be an absolute path")
        return path

    @field_validator("dispositions")
    @classmethod
    def _codes(cls, codes: list[str] | None) -> list[str] | None:
        if codes is None:
            return None
        for code in codes:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", code):
                raise ValueError(f"disposition code {code!r}: lower-case letters, digits and _ only, at most 32")
        return codes

    @model_validator(mode="after")
    def _one_secret_source(self) -> "WebhookConfig":
        # No inline `secret`: campaign files are shown, copied and committed; extra="forbid" refuses one.
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env, secret_file (the HMAC secret; never inline)")
        if self.first_retry > self.max_retry:
            raise ValueError(f"first_retry {self.first_retry} is over max_retry {self.max_retry}")
        return self

    def wants(self, code: str) -> bool:
        return self.dispositions is None or code in self.dispositions

    def secret_source(self) -> str:
        return f"env:{self.secret_env}" if self.secret_env is not None else f"file:{self.secret_file}"


def resolve_secret(source: str) -> bytes:
    """The secret named by a `secret_source()` string, read now (a rotated file is picked up).

    Raises WebhookSecretUnavailable; its message names the source, never the value.
    """
    kind, _, where = source.partition(":")
    if kind == "env":
        value = os.environ.get(where)
        if value is None:
            raise WebhookSecretUnavailable(f"environment variable {where} is not set")
    elif kind == "file":
        try:
            value = Path(where).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise WebhookSecretUnavailable(f"secret_file {where}: {getattr(exc, 'strerror', None) or exc}") from None
    else:
        raise WebhookSecretUnavailable(f"unknown secret source {kind!r}")
    if len(value) < WebhookConfig.MIN_SECRET_LENGTH:
        raise WebhookSecretUnavailable(
            f"{source} holds {len(value)} character(s); a webhook secret needs at least "
            f"{WebhookConfig.MIN_SECRET_LENGTH} (e.g. `openssl rand -hex 32`)"
        )
    return value.encode()


def check_webhooks(webhooks: list[WebhookConfig], codes: set[str] | None) -> list[WebhookConfig]:
    """Names unique, and every disposition code named one the campaign has."""
    seen: set[str] = set()
    for hook in webhooks:
        if hook.name in seen:
            raise ValueError(f"webhook name {hook.name!r} appears twice")
        seen.add(hook.name)
        unknown = sorted(set(hook.dispositions or ()) - codes) if codes is not None else []
        if unknown:
            raise ValueError(
                f"webhook {hook.name}: unknown disposition code(s) {', '.join(unknown)} (known: {', '.join(sorted(codes))})"
            )
    return webhooks
