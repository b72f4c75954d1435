"""The signed JSON webhook: body, headers, and the verification receivers run (docs/webhook.md).

Why Stripe-style signing: the signature covers `"{timestamp}.{body}"`, so a receiver can reject a
captured request replayed later (old timestamp) as well as a forged or altered one, and the body itself
stays byte-identical across retries (it depends only on the delivery row), so receivers can dedupe on
`Idempotency-Key` and even on a hash of the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SCHEMA = "hazardwatch.webhook/1"
CONTENT_TYPE = "application/json"
SIGNATURE_HEADER = "X-Hazardwatch-Signature"
TIMESTAMP_HEADER = "X-Hazardwatch-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300.0


def render_body(msg_type: str, idempotency_key: str, created_at: float, incident: Mapping[str, Any]) -> bytes:
    """The webhook body. Deterministic for one delivery row, so every retry is byte-identical."""
    doc = {
        "schema": SCHEMA,
        "msg_type": msg_type,
        "idempotency_key": idempotency_key,
        "sent_at": created_at,
        "incident": incident,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def render_group_body(
    idempotency_key: str, created_at: float, group: Mapping[str, Any], notifications: list[Mapping[str, Any]]
) -> bytes:
    """A grouped notification's body: msg_type "Group", the group's labels and each incident's change
    (`msg_type`, `idempotency_key`, `incident`) in the order they were planned. Deterministic, as above."""
    doc = {
        "schema": SCHEMA,
        "msg_type": "Group",
        "idempotency_key": idempotency_key,
        "sent_at": created_at,
        "group": group,
        "notifications": notifications,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`: the signature header's value."""
    mac = hmac.new(_as_bytes(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(
    body: bytes,
    *,
    idempotency_key: str,
    secret: str | bytes | None,
    content_type: str = CONTENT_TYPE,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Headers for one attempt; the timestamp is the attempt's own time, so each retry is re-signed."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    headers = {
        "Content-Type": content_type,
        IDEMPOTENCY_HEADER: idempotency_key,
        TIMESTAMP_HEADER: str(ts),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, ts, body)
    return headers


def verify_signature(
    secret: str | bytes,
    timestamp: str | int | None,
    body: bytes,
    header: str | None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when `header` holds a valid v1 signature of this body and the timestamp is recent.

    For receivers: pass the raw request body (bytes, before any JSON parsing), the
    X-Hazardwatch-Timestamp and X-Hazardwatch-Signature header values. A timestamp further than
    `tolerance_s` from `now` (either way) is rejected, which is what defeats replays. The header may list
    several comma-separated signatures (key rotation); one valid `v1=` entry is enough. Comparison is in
    constant time.
    """
    if not header or timestamp is None:
        return False
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    candidates = [part.strip() for part in header.split(",")]
    return any(
        hmac.compare_digest(expected.encode(), part.encode())
        for part in candidates
        if part.startswith(f"{SIGNATURE_VERSION}=")
    )
