"""Who may use the agent and supervisor pages: secrets, sessions, sign-in limits.

Secrets live hashed (scrypt, from hashlib) in the desk users file named by
`http.desk_users_file`, written by `dialer desk set-secret`; it is re-read at
each sign-in, so a changed secret applies without a reload. The API token
stays the admin's: signing in as `admin` with it opens the supervisor page
with the admin role.

Sessions are server-side: the cookie holds only a random id, a new one at
every sign-in (a cookie planted before sign-in is never promoted), and each
session has its own CSRF token that every state-changing request must carry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from dialer.ami.values import interface_problem

ADMIN_ID = "admin"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
MAX_SECRET_LENGTH = 256
MIN_SECRET_LENGTH = 10


class Role(str, Enum):
    agent = "agent"
    supervisor = "supervisor"
    admin = "admin"


class DeskUsersError(ValueError):
    """The desk users file cannot be read or holds a bad entry (the message names the file)."""


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            secret.encode(), salt=base64.b64decode(salt), dklen=len(expected), n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# A hash to verify against when the user is unknown, so that an unknown id costs
# the same time as a wrong secret (no user enumeration by timing).
_DUMMY_HASH = hash_secret("no such user", salt=b"0" * 16)


@dataclass(frozen=True)
class DeskUser:
    id: str
    role: Role
    secret_hash: str
    phone: str | None = None
    """A supervisor's own phone (e.g. PJSIP/sup1): where listen/whisper/barge ring."""


def check_user_id(value: str) -> str:
    if not value or len(value) > 64 or not set(value) <= _ID_CHARS:
        raise DeskUsersError(f"user id {value[:70]!r}: letters, digits, _ . - only (1 to 64)")
    return value


def read_users(path: Path) -> dict[str, DeskUser]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise DeskUsersError(f"{path}: cannot read the desk users file: {exc}") from None
    users: dict[str, DeskUser] = {}
    if not isinstance(data, dict) or not isinstance(data.get("users", {}), dict):
        raise DeskUsersError(f"{path}: users: expected a mapping of user id to role and secret hash")
    for user_id, entry in (data.get("users") or {}).items():
        try:
            check_user_id(str(user_id))
            if not isinstance(entry, dict):
                raise DeskUsersError(f"user {user_id}: expected role and hash")
            role = Role(entry.get("role"))
            phone = entry.get("phone")
            if phone is not None and (problem := interface_problem(str(phone))) is not None:
                raise DeskUsersError(f"user {user_id}: phone: {problem}")
            users[str(user_id)] = DeskUser(str(user_id), role, str(entry["hash"]), phone)
        except (ValueError, KeyError) as exc:
            raise DeskUsersError(f"{path}: users.{str(user_id)[:70]}: {exc}") from None
    return users


def set_user(path: Path, user_id: str, role: Role, secret: str, phone: str | None = None) -> None:
    """Add or replace one user's hashed secret; the file is replaced atomically, mode 0600."""
    check_user_id(user_id)
    if user_id == ADMIN_ID:
        raise DeskUsersError("'admin' signs in with the API token; it has no desk secret")
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise DeskUsersError(f"a secret needs {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters")
    if phone is not None and (problem := interface_problem(phone)) is not None:
        raise DeskUsersError(f"phone: {problem}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        data = {}
    users = data.setdefault("users", {})
    entry: dict[str, Any] = {"role": role.value, "hash": hash_secret(secret)}
    if phone:
        entry["phone"] = phone
    users[user_id] = entry
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(data, out, sort_keys=True)
    os.replace(temporary, path)


@dataclass
class Session:
    id: str
    user: str
    role: Role
    csrf: str
    created: float
    seen: float
    phone: str | None = None
    flash: str | None = None
    """A message for the next page (a refused form, a recorded disposition)."""


class Sessions:
    """Signed-in users, by the random id their cookie holds."""

    IDLE_S = 12 * 3600.0
    MAX = 2000

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def open(self, user: str, role: Role, now: float, phone: str | None = None) -> Session:
        if len(self._by_id) >= self.MAX:
            self._expire(now)
            if len(self._by_id) >= self.MAX:
                oldest = min(self._by_id.values(), key=lambda s: s.seen)
                self._by_id.pop(oldest.id, None)
        session = Session(secrets.token_urlsafe(32), user, role, secrets.token_urlsafe(32), now, now, phone)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None, now: float) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if now - session.seen > self.IDLE_S:
            self._by_id.pop(session_id, None)
            return None
        session.seen = now
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def signed_in(self, user: str, now: float) -> bool:
        """Whether `user` has a session that has not gone idle."""
        return any(s.user == user and now - s.seen <= self.IDLE_S for s in self._by_id.values())

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._by_id.items() if now - s.seen > self.IDLE_S]:
            del self._by_id[key]


@dataclass
class SignInLimiter:
    """At most `attempts` failed sign-ins per `window` seconds per client address and per user id."""

    attempts: int = 5
    window: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def blocked(self, keys: list[str], now: float) -> bool:
        return any(len(self._recent(k, now)) >= self.attempts for k in keys)

    def failed(self, keys: list[str], now: float) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()  # a flood of addresses: start over rather than grow
        for key in keys:
            self._recent(key, now).append(now)

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.setdefault(key, deque(maxlen=self.attempts))
        while found and now - found[0] > self.window:
            found.popleft()
        return found


def check_credentials(
    users: dict[str, DeskUser], user_id: str, secret: str, api_token: str | None
) -> DeskUser | None:
    """The user `user_id` if `secret` is theirs; slow on purpose (scrypt), whatever the answer."""
    if len(secret) > MAX_SECRET_LENGTH:
        return None
    if user_id == ADMIN_ID:
        verify_secret(secret, _DUMMY_HASH)
        if api_token and hmac.compare_digest(secret.encode(), api_token.encode()):
            return DeskUser(ADMIN_ID, Role.admin, "")
        return None
    user = users.get(user_id)
    if user is None:
        verify_secret(secret, _DUMMY_HASH)
        return None
    return user if verify_secret(secret, user.secret_hash) else None
