"""A grouped notification as one CAP 1.2 `<alert>`: one `<info>` (with its `<area>`) per incident change.

CAP allows several `<info>` blocks in one alert, each with its own event, urgency, severity and area, so
a group of incidents stays one valid message. The group's first message is an Alert; later ones are
Updates that reference the group's earlier messages this receiver accepted. A Cancel inside a group is
its incident's `<info>` with responseType AllClear and urgency Past, as in a single incident's Cancel.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from hazardwatch.central.notify.cap import (
    CapOptions,
    CapReference,
    add_info,
    alert_head,
    cap_time,
    message_identifier,
)


def group_identifier(receiver: str, idempotency_key: str) -> str:
    """A group's message: its idempotency key stays readable in the identifier."""
    return message_identifier(idempotency_key, receiver, idempotency_key)


def group_reference(receiver: str, idempotency_key: str, created_at: float, options: CapOptions) -> CapReference:
    return CapReference(options.sender, group_identifier(receiver, idempotency_key), cap_time(created_at, options.tz()))


def render_group_cap(
    payload: Mapping[str, Any],
    *,
    created_at: float,
    receiver: str,
    idempotency_key: str,
    references: Sequence[CapReference] = (),
    options: CapOptions | None = None,
) -> bytes:
    """One CAP `<alert>` for a group's message (`payload` as `services/grouping.py` stores it)."""
    opts = options or CapOptions()
    items = payload.get("notifications") or []
    if not items:
        raise ValueError("a grouped notification without incidents")
    ids = sorted({int(item["incident"]["id"]) for item in items})
    msg_type = "Update" if references else "Alert"
    alert = alert_head(group_identifier(receiver, idempotency_key), msg_type, ids, created_at, references, opts)
    for item in items:
        add_info(alert, item["incident"], str(item["msg_type"]), opts)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)
