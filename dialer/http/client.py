"""The CLI's side of the control API: one request to the running daemon (stdlib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dialer.config.models import DialerConfig


class ApiUnavailable(Exception):
    """No daemon answers, or the config has no `http` section; the message says which."""


class ApiRefused(Exception):
    """The daemon answered with an error; `message` is its JSON message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


def base_url(config: DialerConfig) -> str:
    if config.http is None:
        raise ApiUnavailable("the config has no http section: the daemon's control API is off")
    # A daemon listening on every address is reached on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.http.bind, config.http.bind)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.http.port}"


def call(config: DialerConfig, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    url = base_url(config) + path
    assert config.http is not None
    try:
        token = config.http.resolve_token()
    except (OSError, LookupError) as exc:
        raise ApiUnavailable(f"cannot read the API token: {exc}") from exc
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", exc.reason)
        except (ValueError, AttributeError):
            message = str(exc.reason)
        raise ApiRefused(exc.code, message) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiUnavailable(f"no dialer daemon answers at {base_url(config)}: {reason}") from None
