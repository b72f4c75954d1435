"""The webhook contract (body, headers, Stripe-style signature) and the retry policy's pure parts."""

from __future__ import annotations

import json
import random
from email.utils import formatdate

import pytest

from hazardwatch.central.config import BackoffConfig, ReceiverConfig
from hazardwatch.central.notify.policy import Outcome, backoff_delay, classify, decide, parse_retry_after
from hazardwatch.central.notify.queue import Delivery
from hazardwatch.central.notify.webhook import (
    SCHEMA,
    render_body,
    sign,
    signed_headers,
    verify_signature,
)

pytestmark = pytest.mark.quick

VIEW = {
    "id": 12,
    "hazard": "smoke",
    "state": "open",
    "version": 3,
    "note": 'réservoir <nord> & "est"',
    "score_max": 0.93,
}
NOW = 1_795_540_000


def test_body_is_versioned_and_deterministic():
    body = render_body("Update", "inc12-v3", 1795540000.25, VIEW)
    doc = json.loads(body)
    assert list(doc) == ["schema", "msg_type", "idempotency_key", "sent_at", "incident"]
    assert doc == {
        "schema": SCHEMA,
        "msg_type": "Update",
        "idempotency_key": "inc12-v3",
        "sent_at": 1795540000.25,
        "incident": VIEW,
    }
    # the same row renders the same bytes, also after a round trip through the stored payload text
    assert render_body("Update", "inc12-v3", 1795540000.25, json.loads(json.dumps(VIEW))) == body


def test_headers_carry_key_timestamp_and_signature():
    body = render_body("Alert", "inc12-v1", 1.0, VIEW)
    headers = signed_headers(body, idempotency_key="inc12-v1", secret="s3cret", timestamp=NOW)
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "inc12-v1"
    assert headers["X-Hazardwatch-Timestamp"] == str(NOW)
    sig = headers["X-Hazardwatch-Signature"]
    assert sig.startswith("v1=") and len(sig) == 3 + 64
    assert verify_signature("s3cret", headers["X-Hazardwatch-Timestamp"], body, sig, now=NOW + 10)
    # without a secret nothing is signed (the receiver then has no way to check, which docs warn about)
    assert "X-Hazardwatch-Signature" not in signed_headers(body, idempotency_key="k", secret=None)


def test_signature_matches_an_independent_hmac():
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"key", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("key", 1700000000, body) == f"v1={expected}"


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now", "ok"),
    [
        ("s3cret", NOW, b"payload", NOW, True),
        ("wrong", NOW, b"payload", NOW, False),  # another key
        ("s3cret", NOW, b"payload!", NOW, False),  # body altered in transit
        ("s3cret", NOW, b"payload", NOW + 301, False),  # a replay of a captured request, 5 min later
        ("s3cret", NOW, b"payload", NOW - 301, False),  # a timestamp from the future
        ("s3cret", NOW, b"payload", NOW + 299, True),  # within tolerance
    ],
)
def test_verify_signature(secret, timestamp, body, now, ok):
    header = sign("s3cret", NOW, b"payload")
    assert verify_signature(secret, str(timestamp), body, header, now=now) is ok


def test_replay_with_the_timestamp_rewritten_fails():
    header = sign("s3cret", NOW, b"payload")
    # an attacker who changes the timestamp header to look fresh breaks the signature instead
    assert not verify_signature("s3cret", str(NOW + 600), b"payload", header, now=NOW + 600)


def test_verify_signature_edge_cases():
    header = sign("s3cret", NOW, b"x")
    assert verify_signature("s3cret", NOW, b"x", f"v0=abc, {header}", now=NOW)  # several entries (rotation)
    assert verify_signature(b"s3cret", NOW, b"x", header, now=NOW)
    assert not verify_signature("s3cret", NOW, b"x", header.upper().replace("V1=", "v1="), now=NOW)
    assert not verify_signature("s3cret", "not-a-number", b"x", header, now=NOW)
    assert not verify_signature("s3cret", None, b"x", header, now=NOW)
    assert not verify_signature("s3cret", NOW, b"x", None, now=NOW)
    assert not verify_signature("s3cret", NOW, b"x", "", now=NOW)
    assert not verify_signature("s3cret", NOW, b"x", header.removeprefix("v1="), now=NOW)
    assert not verify_signature("s3cret", NOW, b"x", header, tolerance_s=10, now=NOW + 11)


# -- retry policy ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "result"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (500, "retry"),
        (503, "retry"),
        (429, "retry"),
        (408, "retry"),
        (400, "dead"),
        (401, "dead"),
        (404, "dead"),
        (410, "dead"),
        (301, "dead"),
    ],
)
def test_classify(status, result):
    assert classify(status) == result


def test_parse_retry_after():
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(" 1.5 ", NOW) == 1.5
    assert parse_retry_after("-3", NOW) == 0
    assert parse_retry_after(formatdate(NOW + 30, usegmt=True), NOW) == pytest.approx(30)
    assert parse_retry_after(formatdate(NOW - 30, usegmt=True), NOW) == 0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad, NOW) is None


def test_backoff_grows_exponentially_within_jitter_and_cap():
    cfg = BackoffConfig(initial_s=1, max_s=60, jitter=0.2)
    rng = random.Random(7)
    for attempt, base in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60), (10_000, 60)]:
        for _ in range(50):
            d = backoff_delay(attempt, cfg, rng)
            assert base * 0.8 <= d <= min(60, base * 1.2)
    assert backoff_delay(3, BackoffConfig(initial_s=1, max_s=60, jitter=0), rng) == 4


def _delivery(attempts: int, created_at: float) -> Delivery:
    return Delivery(
        1, "hook", 12, "inc12-v1", "Alert", "{}", "pending", attempts, created_at, None, "", created_at, None
    )


def test_decide_applies_retry_after_and_the_deadline():
    rcv = ReceiverConfig(
        name="hook",
        kind="webhook",
        url="http://x/",
        deadline_s=100,
        backoff=BackoffConfig(initial_s=1, max_s=10, jitter=0),
    )
    rng = random.Random(1)
    assert decide(Outcome(status=200), _delivery(1, NOW), rcv, NOW, rng).result == "delivered"
    d = decide(Outcome(status=500, error="boom"), _delivery(3, NOW), rcv, NOW + 5, rng)
    assert (d.result, d.next_attempt_at, d.error) == ("retry", NOW + 5 + 4, "HTTP 500: boom")
    d = decide(Outcome(status=429, retry_after=30), _delivery(1, NOW), rcv, NOW, rng)
    assert (d.result, d.next_attempt_at) == ("retry", NOW + 30)
    # Retry-After: 0 (or a past date) is not "at once": the backoff applies (docs/webhook.md)
    d = decide(Outcome(status=429, retry_after=0.0), _delivery(3, NOW), rcv, NOW, rng)
    assert (d.result, d.next_attempt_at) == ("retry", NOW + 4)
    d = decide(Outcome(error="timeout after 10 s"), _delivery(1, NOW), rcv, NOW, rng)
    assert d.result == "retry" and d.error == "timeout after 10 s"
    d = decide(Outcome(status=400, error="bad"), _delivery(1, NOW), rcv, NOW, rng)
    assert d.result == "dead" and "HTTP 400: bad" in d.error
    # the next try would land after created_at + deadline_s: give up now
    d = decide(Outcome(status=503), _delivery(5, NOW), rcv, NOW + 95, rng)
    assert d.result == "dead" and "deadline of 100 s exceeded after 5 attempt(s)" in d.error
    d = decide(Outcome(status=429, retry_after=3600), _delivery(1, NOW), rcv, NOW, rng)
    assert d.result == "dead"
