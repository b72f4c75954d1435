"""The CAP structure of a safely parsed document (`safe_xml.parse_xml`): CAP 1.2 warnings and CAP 1.1,
which real agencies still publish.

The structural rules of the OASIS schema (`cap12.xsd`: required elements, enumerations, the dateTime
pattern) are written out here instead of bundling the XSD: the schema file carries "Copyright OASIS
Open 2010 All Rights Reserved" and no licence to redistribute it. The tests validate the same real
samples with xmlschema against the shared copy and check that both agree.

Tolerant mode (the default) accepts what a duty officer would read without hesitation and records
each such deviation on the parsed alert; strict mode rejects it. What is tolerated is listed in
docs/weather.md; anything else is rejected with a reason naming the element.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

from hazardwatch.central.warnings.cap_model import CAP11, CAP12, Area, CapAlert, CapError, Info, Reference
from hazardwatch.central.warnings.safe_xml import MAX_DOCUMENT_BYTES, local_name, namespace, parse_xml

MAX_POLYGON_POINTS = 5_000
# A district bureau acts on areas of a province at most. A polygon spanning more than 10 degrees of latitude
# or longitude (about 1,100 km) or a circle over 500 km in radius is refused as oversized: a warning drawn
# over a continent or the whole world would put every camera on raised watch (docs/weather.md).
MAX_AREA_SPAN_DEG = 10.0
MAX_CIRCLE_RADIUS_KM = 500.0

STATUS = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE")
CATEGORIES_ALL = (*CATEGORIES, "Other")
URGENCY = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITY = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTY = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
# CAP 1.1 allowed "Very Likely"; CAP 1.2 folded it into "Likely".
_CERTAINTY_ALIASES = {"very likely": "Likely"}
_DATETIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
_ID_FORBIDDEN = re.compile(r"[\s,<&]")


class _Reader:
    """Field access with the tolerance rules in one place; collects deviations."""

    def __init__(self, ns: str, strict: bool, tz: timezone | ZoneInfo) -> None:
        self.ns = ns
        self.strict = strict
        self.tz = tz
        self.deviations: list[str] = []

    def deviate(self, what: str) -> None:
        if self.strict:
            raise CapError("invalid", f"{what} (strict mode)")
        if what not in self.deviations:
            self.deviations.append(what)

    def all(self, parent: Element, name: str) -> list[Element]:
        return parent.findall(f"{{{self.ns}}}{name}")

    def text(self, parent: Element, name: str, where: str, required: bool = False) -> str | None:
        found = self.all(parent, name)
        if not found:
            if required:
                raise CapError("invalid", f"{where}.{name} is missing")
            return None
        raw = found[0].text or ""
        value = raw.strip()
        if required and not value:
            raise CapError("invalid", f"{where}.{name} is empty")
        return value

    def enum(self, parent: Element, name: str, allowed: tuple[str, ...], where: str) -> str:
        raw = self.all(parent, name)
        value = self.text(parent, name, where, required=True) or ""
        if (raw[0].text or "") != value:
            self.deviate(f"whitespace around {where}.{name}")
        if value in allowed:
            return value
        folded = {a.lower(): a for a in allowed}
        if name == "certainty" and value.lower() in _CERTAINTY_ALIASES:
            self.deviate(f"{where}.{name} {value!r} (CAP 1.1 value) read as Likely")
            return _CERTAINTY_ALIASES[value.lower()]
        if value.lower() in folded:
            self.deviate(f"{where}.{name} {value!r} not in CAP's letter case")
            return folded[value.lower()]
        raise CapError("invalid", f"{where}.{name} {value[:40]!r} is not one of {', '.join(allowed)}")

    def when(self, value: str, where: str) -> float:
        m = _DATETIME.match(value)
        if not m:
            raise CapError("invalid", f"{where} {value[:40]!r} is not a CAP date-time (YYYY-MM-DDThh:mm:ss+hh:mm)")
        y, mo, d, h, mi, s, frac, off = m.groups()
        if frac:
            self.deviate(f"{where} has fractional seconds")
        try:
            base = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError as exc:
            raise CapError("invalid", f"{where} {value!r}: {exc}") from None
        if off is None:
            self.deviate(f"{where} has no UTC offset; read in the configured time zone")
            stamp = base.replace(tzinfo=self.tz)
        elif off == "Z":
            self.deviate(f"{where} uses 'Z' instead of '+00:00'")
            stamp = base.replace(tzinfo=UTC)
        else:
            sign = 1 if off[0] == "+" else -1
            hours, minutes = int(off[1:3]), int(off[4:6])
            if hours > 14 or minutes > 59:
                raise CapError("invalid", f"{where} {value!r} has an impossible UTC offset")
            stamp = base.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        return stamp.timestamp() + (float(frac) if frac else 0.0)

    def pairs(self, parent: Element, name: str, where: str) -> tuple[tuple[str, str], ...]:
        out = []
        for el in self.all(parent, name):
            vn = self.text(el, "valueName", f"{where}.{name}", required=True) or ""
            v = self.text(el, "value", f"{where}.{name}") or ""
            out.append((vn, v))
        return tuple(out)


def _coordinate(token: str, where: str) -> tuple[float, float]:
    parts = token.split(",")
    if len(parts) != 2:
        raise CapError("invalid", f"{where}: {token[:40]!r} is not 'lat,lon'")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise CapError("invalid", f"{where}: {token[:40]!r} is not 'lat,lon'") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise CapError("invalid", f"{where}: {token[:40]!r} is outside -90..90, -180..180")
    return lat, lon


def _polygon(r: _Reader, raw: str, where: str) -> tuple[tuple[float, float], ...] | None:
    tokens = raw.split()
    if not tokens:
        r.deviate(f"empty {where} ignored")
        return None
    if len(tokens) > MAX_POLYGON_POINTS:
        raise CapError("oversized", f"{where} has more than {MAX_POLYGON_POINTS} points")
    cleaned = []
    for t in tokens:
        if t.endswith(","):
            r.deviate(f"{where} has a stray comma after a point")
            t = t.rstrip(",")
        cleaned.append(_coordinate(t, where))
    if cleaned[0] != cleaned[-1]:
        r.deviate(f"{where} is not closed; closed it")
        cleaned.append(cleaned[0])
    if len(set(cleaned)) < 3:
        raise CapError("invalid", f"{where} has fewer than 3 distinct points")
    lat_span = max(p[0] for p in cleaned) - min(p[0] for p in cleaned)
    lon_span = max(p[1] for p in cleaned) - min(p[1] for p in cleaned)
    if max(lat_span, lon_span) > MAX_AREA_SPAN_DEG:
        raise CapError(
            "oversized", f"{where} spans {lat_span:.1f} x {lon_span:.1f} degrees, more than {MAX_AREA_SPAN_DEG:g}"
        )
    return tuple(cleaned)


def _circle(r: _Reader, raw: str, where: str) -> tuple[float, float, float] | None:
    tokens = raw.split()
    if not tokens:
        r.deviate(f"empty {where} ignored")
        return None
    if len(tokens) != 2:
        raise CapError("invalid", f"{where}: {raw[:60]!r} is not 'lat,lon radius'")
    lat, lon = _coordinate(tokens[0], where)
    try:
        radius = float(tokens[1])
    except ValueError:
        raise CapError("invalid", f"{where}: radius {tokens[1][:20]!r} is not a number") from None
    if not 0 <= radius <= 20_000:
        raise CapError("invalid", f"{where}: radius {radius} km is out of range")
    if radius > MAX_CIRCLE_RADIUS_KM:
        raise CapError("oversized", f"{where}: radius {radius:g} km is more than {MAX_CIRCLE_RADIUS_KM:g} km")
    return lat, lon, radius


def _identifier(value: str, where: str) -> str:
    if _ID_FORBIDDEN.search(value):
        # CAP forbids spaces, commas, '<' and '&' here: references could not name this message.
        raise CapError("invalid", f"{where} {value[:60]!r} contains a space, comma, '<' or '&'")
    return value


def _references(r: _Reader, raw: str | None) -> tuple[Reference, ...]:
    if raw is None:
        return ()
    refs = []
    for token in raw.split():
        parts = token.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            r.deviate(f"malformed reference {token[:60]!r} ignored")
            continue
        sender, identifier, sent = parts
        if not _DATETIME.match(sent):
            r.deviate(f"reference {identifier[:40]!r} has an unreadable sent time")
        refs.append(Reference(sender, identifier, sent))
    if not refs and raw.strip() == "":
        r.deviate("empty references element ignored")
    return tuple(refs)


def _info(r: _Reader, el: Element, k: int) -> Info:
    where = f"info[{k}]"
    categories = []
    for c in r.all(el, "category"):
        value = (c.text or "").strip()
        folded = {a.lower(): a for a in CATEGORIES_ALL}
        if value in CATEGORIES_ALL:
            categories.append(value)
        elif value.lower() in folded:
            r.deviate(f"{where}.category {value!r} not in CAP's letter case")
            categories.append(folded[value.lower()])
        else:
            raise CapError("invalid", f"{where}.category {value[:40]!r} is not a CAP category")
    if not categories:
        raise CapError("invalid", f"{where}.category is missing")
    event = r.text(el, "event", where, required=True) or ""
    urgency = r.enum(el, "urgency", URGENCY, where)
    severity = r.enum(el, "severity", SEVERITY, where)
    certainty_values = (*CERTAINTY, "Very Likely") if r.ns == CAP11 else CERTAINTY
    certainty = r.enum(el, "certainty", certainty_values, where)
    if certainty == "Very Likely":
        certainty = "Likely"
    times: dict[str, float | None] = {}
    for name in ("effective", "onset", "expires"):
        stamp = r.text(el, name, where)
        if stamp is None:
            times[name] = None
        elif stamp == "":
            r.deviate(f"empty {where}.{name} ignored")
            times[name] = None
        else:
            times[name] = r.when(stamp, f"{where}.{name}")
    areas = []
    for j, a in enumerate(r.all(el, "area")):
        aw = f"{where}.area[{j}]"
        desc = r.text(a, "areaDesc", aw, required=True) or ""
        polys = [_polygon(r, p.text or "", f"{aw}.polygon[{i}]") for i, p in enumerate(r.all(a, "polygon"))]
        circles = [_circle(r, c.text or "", f"{aw}.circle[{i}]") for i, c in enumerate(r.all(a, "circle"))]
        areas.append(
            Area(
                desc,
                tuple(p for p in polys if p),
                tuple(c for c in circles if c),
                r.pairs(a, "geocode", aw),
            )
        )
    return Info(
        event=event,
        categories=tuple(categories),
        urgency=urgency,
        severity=severity,
        certainty=certainty,
        event_codes=r.pairs(el, "eventCode", where),
        effective=times["effective"],
        onset=times["onset"],
        expires=times["expires"],
        headline=(r.text(el, "headline", where) or "")[:500],
        sender_name=(r.text(el, "senderName", where) or "")[:200],
        language=r.text(el, "language", where) or "en-US",
        areas=tuple(areas),
    )


def alert_from_element(root: Element, *, strict: bool = False, tz: timezone | ZoneInfo = UTC) -> CapAlert:
    """Read one CAP `<alert>` element (already parsed safely) into a CapAlert, or raise CapError."""
    ns = namespace(root)
    if local_name(root) != "alert":
        raise CapError("unsupported", f"root element <{local_name(root)[:40]}> is not a CAP <alert>")
    if ns not in (CAP12, CAP11):
        raise CapError("unsupported", f"namespace {ns[:80]!r} is not CAP 1.2 (or 1.1)")
    r = _Reader(ns, strict, tz)
    if ns == CAP11:
        r.deviate("CAP 1.1 namespace; read as CAP 1.2")
    identifier = _identifier(r.text(root, "identifier", "alert", required=True) or "", "alert.identifier")
    sender = _identifier(r.text(root, "sender", "alert", required=True) or "", "alert.sender")
    sent = r.when(r.text(root, "sent", "alert", required=True) or "", "alert.sent")
    status = r.enum(root, "status", STATUS, "alert")
    msg_type = r.enum(root, "msgType", MSG_TYPES, "alert")
    scope = r.enum(root, "scope", SCOPES, "alert")
    references = _references(r, r.text(root, "references", "alert"))
    if msg_type == "Cancel" and not references:
        raise CapError("invalid", "a Cancel without references: nothing to cancel")
    infos = tuple(_info(r, el, k) for k, el in enumerate(r.all(root, "info")))
    return CapAlert(
        identifier=identifier,
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=scope,
        version="1.1" if ns == CAP11 else "1.2",
        references=references,
        infos=infos,
        deviations=tuple(r.deviations),
    )


def parse_cap(
    data: bytes,
    *,
    strict: bool = False,
    tz: timezone | ZoneInfo = UTC,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> CapAlert:
    """Bytes of one CAP document -> CapAlert; raises CapError with a code and a reason."""
    return alert_from_element(parse_xml(data, max_bytes), strict=strict, tz=tz)
