"""Token authentication with roles. Tokens are compared by SHA-256 digest, never logged."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass

from hazardwatch.central.config import AuthConfig
from hazardwatch.configfile import resolve_secret

ROLES = {"edge": -1, "viewer": 0, "operator": 1, "admin": 2}  # edge: evidence upload, model download
COOKIE = "hw_token"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenBook:
    def __init__(self, cfg: AuthConfig) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        for t in cfg.tokens:
            value = resolve_secret(t.token.value, t.token.env, t.token.file, f"token of {t.name}")
            if not value:
                raise ValueError(f"auth token of {t.name} is empty")
            self._by_digest[digest(value)] = Principal(t.name, t.role)

    def lookup(self, token: str | None) -> Principal | None:
        if not token:
            return None
        d = digest(token)
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, d):
                return principal
        return None


class RateLimiter:
    """At most `per_minute` failures per client in a sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        q = self._failures.get(client)
        if not q:
            return False
        while q and q[0] < now - 60:
            q.popleft()
        return len(q) >= self.per_minute

    def fail(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._failures.setdefault(client, deque()).append(now)
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            self._failures.pop(next(iter(self._failures)))
