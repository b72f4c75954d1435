"""CAP as central reads it: the parsed alert, its info blocks, areas and references, and the error that
refuses a document. Plain data, so rules, the store and the API use it without the parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hazardwatch.central.services.errors import Invalid

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11 = "urn:oasis:names:tc:emergency:cap:1.1"


class CapError(Invalid):
    """A document that is not acted on. `code` is a short metric label, `reason` says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Area:
    desc: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()  # lat, lon, radius km
    geocodes: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "desc": self.desc,
            "polygons": [[list(p) for p in poly] for poly in self.polygons],
            "circles": [list(c) for c in self.circles],
            "geocodes": [list(g) for g in self.geocodes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Area:
        return cls(
            desc=d["desc"],
            polygons=tuple(tuple((float(a), float(b)) for a, b in poly) for poly in d["polygons"]),
            circles=tuple((float(a), float(b), float(r)) for a, b, r in d["circles"]),
            geocodes=tuple((str(n), str(v)) for n, v in d["geocodes"]),
        )


@dataclass(frozen=True)
class Info:
    event: str
    categories: tuple[str, ...]
    urgency: str
    severity: str
    certainty: str
    event_codes: tuple[tuple[str, str], ...] = ()
    effective: float | None = None
    onset: float | None = None
    expires: float | None = None
    headline: str = ""
    sender_name: str = ""
    language: str = "en-US"
    areas: tuple[Area, ...] = ()


@dataclass(frozen=True)
class Reference:
    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    sender: str
    sent: float
    status: str
    msg_type: str
    scope: str
    version: str  # "1.2" or "1.1"
    references: tuple[Reference, ...] = ()
    infos: tuple[Info, ...] = ()
    deviations: tuple[str, ...] = field(default=())
