"""Delivery to the command platform: a persistent queue, signed webhooks and CAP 1.2 (docs/webhook.md)."""

from hazardwatch.central.notify.cap import CapOptions, CapReference, render_cap
from hazardwatch.central.notify.cap_group import render_group_cap
from hazardwatch.central.notify.policy import DeliveryMetrics
from hazardwatch.central.notify.queue import Delivery
from hazardwatch.central.notify.webhook import render_body, render_group_body, sign, signed_headers, verify_signature
from hazardwatch.central.notify.worker import DeliveryWorker

__all__ = [
    "CapOptions",
    "CapReference",
    "Delivery",
    "DeliveryMetrics",
    "DeliveryWorker",
    "render_body",
    "render_cap",
    "render_group_body",
    "render_group_cap",
    "sign",
    "signed_headers",
    "verify_signature",
]
