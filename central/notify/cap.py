"""OASIS CAP 1.2 messages from an incident view, for public-warning and command platforms.

Why these choices (the mapping table is in docs/webhook.md):
- `identifier` is derived from the incident, its version and a hash of (receiver, idempotency key): it is
  unique per message and receiver, contains no space, comma, `<` or `&` (CAP forbids them) and is the same
  on every retry, so a CAP consumer dedupes a repeat just like a webhook receiver does.
- `sent` is the delivery row's creation time, not the attempt's, for the same reason; CAP wants a
  numeric offset, no fraction and `-00:00` for UTC.
- `references` lists the earlier messages of the incident that this receiver accepted, which is what a
  CAP consumer needs to chain Update and Cancel to the original Alert.
- Built with xml.etree, so text is escaped by the library; characters XML 1.0 cannot carry are dropped.
  The default namespace is written as an attribute on the root, so no process-wide namespace registry is
  touched.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CONTENT_TYPE = "application/cap+xml"
MSG_TYPES = ("Alert", "Update", "Cancel")

CATEGORY = {"smoke": "Fire", "fire": "Fire", "waterlogging": "Met", "fallen_tree": "Transport"}
EVENT = {
    "smoke": "Wildfire smoke",
    "fire": "Fire",
    "waterlogging": "Waterlogging",
    "fallen_tree": "Fallen tree",
}
RESPONSE = {"smoke": "Monitor", "fire": "Avoid", "waterlogging": "Avoid", "fallen_tree": "Avoid"}
SEVERITY = {"extreme": "Extreme", "severe": "Severe", "moderate": "Moderate", "minor": "Minor"}
# Radius of the area circle. An estimated location (view cones intersected) is rougher than a measured one.
LOCATION_RADIUS_KM = {True: 1.0, False: 0.5}
# No incident location: a circle around each camera. Smoke is seen from far away, a flooded street is not.
CAMERA_RADIUS_KM = {"smoke": 5.0, "fire": 2.0, "waterlogging": 0.3, "fallen_tree": 0.3}
DEFAULT_CAMERA_RADIUS_KM = 1.0

_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:@-]")


@dataclass(frozen=True)
class CapOptions:
    """Per-deployment CAP settings: who sends, in which time zone, and where the incident page is."""

    sender: str = "hazardwatch@central"
    sender_name: str = "hazardwatch central"
    timezone: str = "UTC"
    web_base: str | None = None
    language: str = "en-US"

    def tz(self) -> tzinfo:
        return UTC if self.timezone.upper() in ("UTC", "Z", "ETC/UTC") else ZoneInfo(self.timezone)


@dataclass(frozen=True)
class CapReference:
    """One earlier message, as CAP's `references` wants it: sender, identifier, sent."""

    sender: str
    identifier: str
    sent: str

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


def _clean(text: object) -> str:
    return _XML_INVALID.sub("", str(text))


def cap_time(ts: float, tz: tzinfo = UTC) -> str:
    """ISO 8601 with a numeric offset and no fraction; UTC is written `-00:00` as CAP 1.2 requires."""
    text = datetime.fromtimestamp(int(ts // 1), tz).isoformat(timespec="seconds")
    if text.endswith("+00:00") and tz is UTC:
        text = text[:-6] + "-00:00"
    return text


def message_identifier(stem: str, receiver: str, idempotency_key: str) -> str:
    """`hazardwatch-<stem>-<digest of receiver and key>`: unique per message and receiver, stable across
    retries, free of CAP's forbidden characters (one incident's messages and a group's alike)."""
    digest = hashlib.sha256(f"{receiver}\0{idempotency_key}".encode()).hexdigest()[:12]
    return _ID_UNSAFE.sub("-", f"hazardwatch-{stem}-{digest}")


def cap_identifier(incident_id: int, version: int, receiver: str, idempotency_key: str) -> str:
    """One incident's message: its id and version stay readable in the identifier."""
    return message_identifier(f"inc{incident_id}-v{version}", receiver, idempotency_key)


def reference_for(
    view: Mapping[str, Any], receiver: str, idempotency_key: str, created_at: float, options: CapOptions
) -> CapReference:
    """The `references` entry for a message this receiver got earlier."""
    return CapReference(
        sender=options.sender,
        identifier=cap_identifier(int(view["id"]), int(view.get("version") or 0), receiver, idempotency_key),
        sent=cap_time(created_at, options.tz()),
    )


def _sub(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = _clean(text)
    return el


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _web(view: Mapping[str, Any], options: CapOptions) -> str | None:
    base = options.web_base
    if not base:
        for ev in view.get("evidence") or []:
            parts = urlsplit(str(ev.get("url") or ""))
            if parts.scheme in ("http", "https") and parts.netloc:
                base = f"{parts.scheme}://{parts.netloc}"
                break
    return f"{base.rstrip('/')}/api/v1/incidents/{view['id']}" if base else None


def _place_desc(view: Mapping[str, Any]) -> str:
    """The incident's place in words: its named area, and for one camera the stretch of its view."""
    place = view.get("place") or {}
    parts = [str(place["area"])] if place.get("area") else []
    if place.get("range_m"):
        near, far = (float(v) for v in place["range_m"])
        parts.append(f"{near:.0f}-{far:.0f} m from the camera, bearing {float(place['bearing_deg']):.0f} deg")
    return ", ".join(parts)


def _area_desc(view: Mapping[str, Any]) -> str:
    """`named area, stretch; site: camera names`: where first, then who saw it."""
    names = [str(c.get("name") or f"{c.get('edge_id')}/{c.get('camera_id')}") for c in view.get("cameras") or []]
    site = str(view.get("site") or "").strip()
    seen = ": ".join(p for p in (site, ", ".join(names)) if p)
    where = _place_desc(view)
    return "; ".join(p for p in (where, seen) if p) or "Unknown area"


def _circles(view: Mapping[str, Any]) -> list[str]:
    loc = view.get("location")
    if loc and loc.get("lat") is not None and loc.get("lon") is not None:
        radius = LOCATION_RADIUS_KM[bool(loc.get("estimated"))]
        return [f"{_num(float(loc['lat']))},{_num(float(loc['lon']))} {_num(radius)}"]
    radius = CAMERA_RADIUS_KM.get(str(view.get("hazard")), DEFAULT_CAMERA_RADIUS_KM)
    circles = []
    for cam in view.get("cameras") or []:
        if cam.get("lat") is not None and cam.get("lon") is not None:
            circle = f"{_num(float(cam['lat']))},{_num(float(cam['lon']))} {_num(radius)}"
            if circle not in circles:
                circles.append(circle)
    return circles


URGENCY = {"extreme": "Immediate", "severe": "Immediate", "moderate": "Expected", "minor": "Future"}


def _certainty(view: Mapping[str, Any], cams: int) -> str:
    """Follows the incident's calibrated confidence; several cameras seeing it make it Observed."""
    if view.get("state") == "false_alarm":
        return "Unlikely"
    confidence = view.get("confidence")
    if cams >= 2 or (confidence is not None and float(confidence) >= 0.8):
        return "Observed"
    if confidence is None or float(confidence) >= 0.5:
        return "Likely"
    return "Possible"


def _instruction(proc: Mapping[str, Any]) -> str:
    """The incident's procedure as numbered steps, with what was already done."""
    lines = [str(proc.get("title") or "")]
    for step in proc.get("steps") or []:
        done = " (done)" if step.get("done") else ""
        lines.append(f"{int(step.get('index', 0)) + 1}. {step.get('text')}{done}")
    return "\n".join(line for line in lines if line)


def _contact(proc: Mapping[str, Any]) -> str:
    parts = []
    for c in proc.get("contacts") or []:
        parts.append(f"{c.get('name')}: {c.get('phone')}" if c.get("phone") else str(c.get("name")))
    return "; ".join(parts)


def _headline(view: Mapping[str, Any], msg_type: str) -> str:
    event = EVENT.get(str(view.get("hazard")), str(view.get("hazard") or "Hazard").replace("_", " ").capitalize())
    where = str(view.get("site") or "").strip()
    cams = view.get("camera_count") or len(view.get("cameras") or [])
    text = f"{event} detected" + (f" at {where}" if where else "") + f" by {cams} camera{'s' if cams != 1 else ''}"
    if msg_type == "Cancel":
        state = view.get("state")
        text = f"{'False alarm' if state == 'false_alarm' else 'Resolved'}: {text}"
    elif msg_type == "Update":
        text = f"Update: {text}"
    return text[:160]


def _description(view: Mapping[str, Any], options: CapOptions) -> str:
    tz = options.tz()
    lines = [
        f"Incident {view['id']} (version {view.get('version')}), state {view.get('state')}, "
        f"severity {view.get('severity')}"
        + (f", confidence {float(view['confidence']):.2f}" if view.get("confidence") is not None else "")
        + ".",
    ]
    reasons = [r.get("text") for r in view.get("severity_reasons") or [] if r.get("text")]
    if reasons:
        lines.append("Severity because: " + "; ".join(str(r) for r in reasons) + ".")
    if view.get("opened_at") is not None:
        lines.append(f"Opened {cap_time(float(view['opened_at']), tz)}.")
    loc = view.get("location")
    if loc and loc.get("lat") is not None:
        how = "estimated from intersecting camera views" if loc.get("estimated") else "reported"
        lines.append(f"Location {how}: {float(loc['lat']):.5f}, {float(loc['lon']):.5f}.")
    for cam in view.get("cameras") or []:
        lines.append(
            f"Camera {cam.get('edge_id')}/{cam.get('camera_id')} {cam.get('name') or ''}".rstrip()
            + f" ({cam.get('state') or 'unknown'})."
        )
    if view.get("acknowledged_by"):
        lines.append(f"Acknowledged by {view['acknowledged_by']}.")
    if view.get("resolved_by"):
        what = "Marked false alarm" if view.get("state") == "false_alarm" else "Resolved"
        lines.append(f"{what} by {view['resolved_by']}.")
    if view.get("note"):
        lines.append(f"Note: {view['note']}")
    return "\n".join(lines)


def render_cap(
    view: Mapping[str, Any],
    msg_type: str,
    *,
    created_at: float,
    receiver: str,
    idempotency_key: str,
    references: Sequence[CapReference] = (),
    options: CapOptions | None = None,
) -> bytes:
    """One CAP 1.2 `<alert>` (UTF-8 bytes with an XML declaration) for this delivery."""
    if msg_type not in MSG_TYPES:
        raise ValueError(f"msg_type must be one of {', '.join(MSG_TYPES)}, not {msg_type!r}")
    opts = options or CapOptions()
    identifier = cap_identifier(int(view["id"]), int(view.get("version") or 0), receiver, idempotency_key)
    alert = alert_head(identifier, msg_type, [int(view["id"])], created_at, references, opts)
    add_info(alert, view, msg_type, opts)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)


def alert_head(
    identifier: str,
    msg_type: str,
    incident_ids: Sequence[int],
    created_at: float,
    references: Sequence[CapReference],
    opts: CapOptions,
) -> ET.Element:
    """`<alert>` down to `<incidents>`, before the `<info>` blocks: one incident's message and a group's alike."""
    alert = ET.Element("alert", {"xmlns": CAP_NS})
    _sub(alert, "identifier", identifier)
    _sub(alert, "sender", opts.sender)
    _sub(alert, "sent", cap_time(created_at, opts.tz()))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", msg_type)
    _sub(alert, "scope", "Public")
    if msg_type != "Alert" and references:
        _sub(alert, "references", " ".join(str(r) for r in references))
    _sub(alert, "incidents", " ".join(f"hazardwatch-inc{i}" for i in incident_ids))
    return alert


def add_info(alert: ET.Element, view: Mapping[str, Any], msg_type: str, opts: CapOptions) -> None:
    """One incident's `<info>` (with its `<area>`); a grouped message holds one per incident."""
    tz = opts.tz()
    hazard = str(view.get("hazard") or "")
    cams = int(view.get("camera_count") or len(view.get("cameras") or []))
    info = _sub(alert, "info")
    _sub(info, "language", opts.language)
    _sub(info, "category", CATEGORY.get(hazard, "Other"))
    _sub(info, "event", EVENT.get(hazard, hazard.replace("_", " ").capitalize() or "Hazard"))
    _sub(info, "responseType", "AllClear" if msg_type == "Cancel" else RESPONSE.get(hazard, "Monitor"))
    _sub(info, "urgency", "Past" if msg_type == "Cancel" else URGENCY.get(str(view.get("severity")), "Unknown"))
    _sub(info, "severity", SEVERITY.get(str(view.get("severity")), "Unknown"))
    _sub(info, "certainty", _certainty(view, cams))
    _sub(info, "senderName", opts.sender_name + (f" ({view['site']})" if view.get("site") else ""))
    _sub(info, "headline", _headline(view, msg_type))
    _sub(info, "description", _description(view, opts))
    proc = view.get("procedure") or {}
    if proc.get("steps") and msg_type != "Cancel":
        _sub(info, "instruction", _instruction(proc))
    web = _web(view, opts)
    if web:
        _sub(info, "web", web)
    if proc.get("contacts"):
        _sub(info, "contact", _contact(proc))
    for name in ("id", "version", "state", "camera_count", "confidence", "score_max"):
        if view.get(name) is None:
            continue
        param = _sub(info, "parameter")
        _sub(param, "valueName", f"hazardwatch:{name}")
        _sub(param, "value", view.get(name))
    for ev in view.get("evidence") or []:
        if not ev.get("url"):
            continue
        res = _sub(info, "resource")
        when = f" at {cap_time(float(ev['at']), tz)}" if ev.get("at") is not None else ""
        _sub(res, "resourceDesc", f"Snapshot from camera {ev.get('camera') or 'unknown'}{when}")
        _sub(res, "mimeType", "image/jpeg")
        _sub(res, "uri", ev["url"])
    area = _sub(info, "area")
    _sub(area, "areaDesc", _area_desc(view))
    for circle in _circles(view):
        _sub(area, "circle", circle)
