"""Config building blocks both services extend: strict models, paths, secrets, TLS, broker, HTTP, backoff.

One secret convention for every secret in every config: a mapping with exactly one of `env` (an
environment variable's name), `file` (a file holding it) or `value` (inline, for tests), e.g.
`password: {env: HAZARDWATCH_BROKER_PASSWORD}`. Keys of the older edge convention
(`password_env`, `token_file`, a plain string) are refused with a message that names the
replacement, never ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hazardwatch.configfile import resolve_secret


class Strict(BaseModel):
    """Unknown keys are errors and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_path(path: Path | None, info: ValidationInfo) -> Path | None:
    """A relative path is relative to the config file's folder (the loader passes it as context)."""
    if path is None or path.is_absolute():
        return path
    base = (info.context or {}).get("config_dir")
    return (Path(base) / path) if base else path


class Secret(Strict):
    """A secret from exactly one place: an environment variable, a file, or inline (tests only)."""

    env: str | None = None
    file: Path | None = None
    value: str | None = Field(default=None, description="Inline; prefer env or file")

    _file = field_validator("file")(resolve_path)

    @model_validator(mode="before")
    @classmethod
    def _not_a_string(cls, data: object) -> object:
        if isinstance(data, str):
            raise ValueError("a secret is a mapping: {env: NAME}, {file: PATH} or {value: ...} (inline, tests only)")
        return data

    @model_validator(mode="after")
    def _one(self) -> Secret:
        given = [k for k in ("env", "file", "value") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of env, file or value (given: {', '.join(given) or 'none'})")
        return self

    def reveal(self, what: str) -> str:
        """The secret itself; ValueError naming `what` when its variable is unset or its file unreadable."""
        return resolve_secret(self.value, self.env, self.file, what) or ""


def refuse_removed_keys(data: object, removed: dict[str, str]) -> object:
    """For a `mode="before"` validator: a removed key fails with its replacement, never silently."""
    if isinstance(data, dict):
        for key, replacement in removed.items():
            if key in data:
                raise ValueError(f"{key} is no longer accepted: write {replacement}")
    return data


class TlsSettings(Strict):
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    _paths = field_validator("ca_file", "cert_file", "key_file")(resolve_path)

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate authentication)")
        return self


BROKER_REMOVED_KEYS = {
    "password_env": "password: {env: NAME}",
    "password_file": "password: {file: PATH}",
}


class BrokerSettings(Strict):
    """An MQTT broker as either side connects to it; each side adds its own session options."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: TlsSettings | None = None
    username: str | None = None
    password: Secret | None = Field(default=None, description="{env: NAME}, {file: PATH} or {value: ...}")
    client_id: str | None = None
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT version; 3.1.1 for brokers without 5")
    topic_prefix: str = "hazardwatch"
    keepalive_s: int = Field(default=30, ge=5, le=600)

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        return refuse_removed_keys(data, BROKER_REMOVED_KEYS)


class HttpSettings(Strict):
    """Where a service's own HTTP server listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")


class BackoffSettings(Strict):
    """Exponential retry delays: initial_s, doubling up to max_s, each spread by +- jitter."""

    initial_s: float = Field(default=1.0, gt=0)
    max_s: float = Field(default=60.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1, description="Random +- share of each delay")
