"""Labels on incidents' evidence, and a sampler proposing what is worth labelling next.

A label says what the evidence really shows: the hazard (which), a false alarm (which look-alike:
cloud, fog, dust, vehicle, lights...), or ambiguous; optionally a corrected region. Labels are
append-only: a new label on the same incident (or the same evidence file) supersedes the older one
for export, and the history says who changed their mind when.

What the sampler can propose with the data central has (after Roboflow's active-learning samplers):
- confirmed false alarms (an operator marked the incident false_alarm): the hard negatives a model
  learns most from;
- alarms whose score came close to the model's operating threshold (the threshold of the newest
  registered model of that hazard, 0.5 if none is registered): where the model is unsure;
- a small random share of quiet frames: only frames the edges upload with `evidence.quiet_share`
  (alert-free looks); central never sees other quiet frames, since edges send alerts only;
- the remaining unlabelled alarms, newest first.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hazardwatch.central.services import evidence_files, registry
from hazardwatch.central.services.errors import Invalid, NotFound
from hazardwatch.central.store import Tx
from hazardwatch.contract import Hazard

FalseAlarmKind = Literal[
    "cloud", "fog", "haze", "dust", "steam", "vehicle", "lights", "glare", "reflection", "animal", "other"
]
Verdict = Literal["hazard", "false_alarm", "ambiguous"]
NEAR_MARGIN = 0.15
DEFAULT_THRESHOLD = 0.5
QUIET_SHARE = 0.1


class EvidenceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edge_id: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=128)


class LabelBody(BaseModel):
    """What an operator says about one incident (or one evidence file of it)."""

    model_config = ConfigDict(extra="forbid")
    verdict: Verdict
    hazard: Hazard | None = Field(default=None, description="verdict hazard: which (default: the incident's)")
    false_alarm_kind: FalseAlarmKind | None = None
    region: tuple[float, float, float, float] | None = Field(
        default=None, description="Corrected region [x1, y1, x2, y2], relative to the image (0..1)"
    )
    evidence: EvidenceRef | None = Field(default=None, description="Label one evidence file only")
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> LabelBody:
        if self.verdict == "false_alarm" and self.false_alarm_kind is None:
            raise ValueError("a false alarm needs false_alarm_kind (cloud, fog, dust, vehicle, lights, ...)")
        if self.verdict != "false_alarm" and self.false_alarm_kind is not None:
            raise ValueError("false_alarm_kind only goes with verdict false_alarm")
        if self.region is not None:
            x1, y1, x2, y2 = self.region
            if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
                raise ValueError("region must be x1 < x2, y1 < y2 within 0..1")
        return self


_COLS = (
    "id, incident_id, evidence_edge, evidence_id, verdict, hazard, false_alarm_kind, region, note, labelled_by, "
    "labelled_at, exported_at"
)


def _row(r: tuple) -> dict[str, Any]:
    return {
        "id": r[0],
        "incident_id": r[1],
        "evidence": {"edge_id": r[2], "id": r[3]} if r[3] else None,
        "verdict": r[4],
        "hazard": r[5],
        "false_alarm_kind": r[6],
        "region": json.loads(r[7]) if r[7] else None,
        "note": r[8],
        "labelled_by": r[9],
        "labelled_at": r[10],
        "exported_at": r[11],
    }


def add(tx: Tx, incident_id: int | None, body: LabelBody, who: str, now: float) -> dict[str, Any]:
    hazard = body.hazard.value if body.hazard else None
    if incident_id is not None:
        inc = tx.one("SELECT hazard FROM incidents WHERE id = ?", (incident_id,))
        if inc is None:
            raise NotFound(f"incident {incident_id} does not exist")
        if body.verdict == "hazard" and hazard is None:
            hazard = inc[0]
    elif body.evidence is None:
        raise Invalid("label an incident or an evidence file")
    if body.evidence is not None:
        known = tx.one(
            "SELECT hazard FROM evidence_files WHERE edge_id = ? AND id = ? AND complete = 1",
            (body.evidence.edge_id, body.evidence.id),
        )
        if known is None:
            raise NotFound("no such evidence file")
        if hazard is None and body.verdict == "hazard":
            hazard = known[0]
    if body.verdict == "hazard" and hazard is None:
        raise Invalid("say which hazard")
    lid = tx.scalar(
        "INSERT INTO labels(incident_id, evidence_edge, evidence_id, verdict, hazard, false_alarm_kind, region, note, "
        "labelled_by, labelled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            incident_id,
            body.evidence.edge_id if body.evidence else None,
            body.evidence.id if body.evidence else None,
            body.verdict,
            hazard,
            body.false_alarm_kind,
            json.dumps(list(body.region)) if body.region else None,
            body.note,
            who,
            now,
        ),
    )
    if incident_id is not None:
        tx.execute(
            "INSERT INTO incident_events(incident_id, at, kind, actor, detail) VALUES (?, ?, 'labelled', ?, ?)",
            (incident_id, now, who, json.dumps({"label_id": lid, "verdict": body.verdict})),
        )
    row = tx.one(f"SELECT {_COLS} FROM labels WHERE id = ?", (lid,))
    assert row is not None
    return _row(row)


def for_incident(tx: Tx, incident_id: int) -> list[dict[str, Any]]:
    return [
        _row(r) for r in tx.execute(f"SELECT {_COLS} FROM labels WHERE incident_id = ? ORDER BY id", (incident_id,))
    ]


def listing(tx: Tx, since: float | None, limit: int) -> list[dict[str, Any]]:
    rows = tx.execute(f"SELECT {_COLS} FROM labels WHERE labelled_at >= ? ORDER BY id LIMIT ?", (since or 0.0, limit))
    return [_row(r) for r in rows]


def current(tx: Tx, since: float | None) -> list[dict[str, Any]]:
    """The labels that count: the newest per incident (or per evidence file), labelled since `since`."""
    rows = tx.execute(f"SELECT {_COLS} FROM labels ORDER BY id")
    latest: dict[tuple, dict] = {}
    for r in rows:
        label = _row(r)
        key = ("file", r[2], r[3]) if r[3] else ("incident", r[1])
        latest[key] = label
    return [lb for lb in latest.values() if lb["labelled_at"] >= (since or 0.0)]


def mark_exported(tx: Tx, ids: list[int], now: float) -> None:
    for lid in ids:
        tx.execute("UPDATE labels SET exported_at = ? WHERE id = ? AND exported_at IS NULL", (now, lid))


def guess_kind(note: str) -> str | None:
    """The false-alarm kind an operator's note names, if any."""
    for kind in ("cloud", "fog", "haze", "dust", "steam", "vehicle", "lights", "glare", "reflection", "animal"):
        if re.search(kind.rstrip("s"), note, re.I):
            return kind
    return None


def propose(tx: Tx, limit: int, seed: int | None = None) -> list[dict[str, Any]]:
    """What to label next, most useful first; each item says why it was chosen."""
    labelled = {r[0] for r in tx.execute("SELECT DISTINCT incident_id FROM labels WHERE incident_id IS NOT NULL")}
    labelled_files = {
        (r[0], r[1]) for r in tx.execute("SELECT evidence_edge, evidence_id FROM labels WHERE evidence_id IS NOT NULL")
    }
    rows = tx.execute(
        "SELECT id, hazard, state, score_max, note, opened_at, cameras FROM incidents ORDER BY last_alert_at DESC "
        "LIMIT 2000"
    )
    thresholds: dict[str, float] = {}
    out: list[dict[str, Any]] = []
    near: list[tuple[float, dict]] = []
    rest: list[dict] = []
    for iid, hazard, state, score, note, opened_at, cameras in rows:
        if iid in labelled:
            continue
        item = {
            "incident_id": iid,
            "hazard": hazard,
            "state": state,
            "score_max": score,
            "opened_at": opened_at,
            "cameras": json.loads(cameras),
        }
        if state == "false_alarm":
            out.append(
                {
                    **item,
                    "reason": "confirmed_false_alarm",
                    "suggested": {"verdict": "false_alarm", "false_alarm_kind": guess_kind(note or "")},
                }
            )
            continue
        if hazard not in thresholds:
            thresholds[hazard] = registry.threshold_for(tx, hazard) or DEFAULT_THRESHOLD
        distance = abs(score - thresholds[hazard])
        if distance <= NEAR_MARGIN:
            near.append((distance, {**item, "reason": "near_threshold", "threshold": thresholds[hazard]}))
        else:
            rest.append({**item, "reason": "alarm"})
    out += [it for _, it in sorted(near, key=lambda t: t[0])]
    quiet = [q for q in evidence_files.quiet_frames(tx, 5000) if (q["edge_id"], q["id"]) not in labelled_files]
    n_quiet = min(len(quiet), max(1, int(limit * QUIET_SHARE))) if quiet else 0
    picked = random.Random(seed).sample(quiet, n_quiet)
    out = out[: max(0, limit - n_quiet)]
    out += [{"reason": "quiet_sample", "evidence": q} for q in picked]
    out += rest
    return out[:limit]
