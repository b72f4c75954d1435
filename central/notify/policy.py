"""Delivery policy: what an attempt's outcome means for the queue (retry with backoff and jitter,
Retry-After, the deadline, dead letters) and the worker's Prometheus series. Pure, so it is tested
without a network; the worker (`worker.py`) applies it.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hazardwatch.central.config import BackoffConfig, ReceiverConfig
from hazardwatch.central.notify.queue import Delivery

Result = Literal["delivered", "retry", "dead"]


class DeliveryMetrics:
    """The worker's Prometheus series, registered in the registry the service passes in (no globals)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "hazardwatch_central_deliveries",
            "Delivery attempts by receiver and result (delivered, retry, dead)",
            ["receiver", "result"],
            registry=registry,
        )
        self.seconds = Histogram(
            "hazardwatch_central_delivery_seconds",
            "Time of one delivery attempt (render + HTTP round trip)",
            ["receiver"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.pending = Gauge(
            "hazardwatch_central_deliveries_pending",
            "Notifications waiting in the delivery queue, per receiver (updated on each claim)",
            ["receiver"],
            registry=registry,
        )
        self.dead = Gauge(
            "hazardwatch_central_deliveries_dead",
            "Dead letters per receiver (updated on each claim)",
            ["receiver"],
            registry=registry,
        )


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt produced: a status (with Retry-After and a body excerpt) or a transport error."""

    status: int | None = None
    error: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class Decision:
    result: Result
    error: str = ""
    next_attempt_at: float | None = None


def classify(status: int) -> Result:
    """2xx accepted; 408, 429 and 5xx are transient; anything else (other 4xx, 3xx) will never succeed."""
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or 500 <= status < 600:
        return "retry"
    return "dead"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, backoff: BackoffConfig, rng: random.Random) -> float:
    """initial * 2^(attempt-1), capped at max, spread by ±jitter so instances do not retry in step."""
    base = min(backoff.max_s, backoff.initial_s * 2 ** max(0, min(attempt - 1, 60)))
    spread = 1.0 + backoff.jitter * (2.0 * rng.random() - 1.0)
    return max(0.0, min(backoff.max_s, base * spread))


def decide(outcome: Outcome, delivery: Delivery, receiver: ReceiverConfig, now: float, rng: random.Random) -> Decision:
    """Turn an attempt's outcome into the queue's next state, applying backoff and the deadline."""
    if outcome.status is not None:
        kind = classify(outcome.status)
        error = f"HTTP {outcome.status}" + (f": {outcome.error}" if outcome.error else "")
        if kind == "delivered":
            return Decision("delivered")
        if kind == "dead":
            return Decision("dead", f"rejected, not retried: {error}")
    else:
        error = outcome.error or "unknown error"
    if outcome.retry_after is not None and outcome.retry_after > 0:
        delay = outcome.retry_after
    else:
        delay = backoff_delay(delivery.attempts, receiver.backoff, rng)
    next_at = now + delay
    deadline = delivery.created_at + receiver.deadline_s
    if next_at > deadline:
        return Decision(
            "dead",
            f"deadline of {receiver.deadline_s:g} s exceeded after {delivery.attempts} attempt(s); last error: {error}",
        )
    return Decision("retry", error, next_at)
