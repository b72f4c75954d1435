"""Delivery to the command platform: a persistent queue, signed webhooks and CAP 1.2 (docs/webhook.md)."""

from hazardwatch.central.notify.cap import CapOptions, CapReference, render_cap
from hazardwatch.central.notify.queue import Delivery
from hazardwatch.central.notify.webhook import render_body, sign, signed_headers, verify_signature
from hazardwatch.central.notify.worker import DeliveryMetrics, DeliveryWorker

__all__ = [
    "CapOptions",
    "CapReference",
    "Delivery",
    "DeliveryMetrics",
    "DeliveryWorker",
    "render_body",
    "render_cap",
    "sign",
    "signed_headers",
    "verify_signature",
]
