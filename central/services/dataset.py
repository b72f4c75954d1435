"""What a training-set export reads from the store: each current label with the evidence behind it
(full-resolution snapshots, clips, or the alerts' small JPEGs when no file was uploaded).

Bytes only: decoding, de-duplicating and writing the layout need OpenCV and PyAV, which central's
install does not have, so they live with the models tooling (`hazardwatch.models.dataset_export`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hazardwatch.central.services import labels
from hazardwatch.central.store import Tx


@dataclass(frozen=True)
class Evidence:
    """One image (`kind` snapshot) or clip (`kind` clip: an MP4 or the edge's JPEG tar) behind a label."""

    data: bytes
    content_type: str
    kind: str
    edge_id: str
    camera_id: str
    captured_at: float
    source: str  # where it came from, for frames.csv: evidence-file:EDGE/ID or alert-snapshot:ID
    boxes: list[list[float]] = field(default_factory=list)  # [x1, y1, x2, y2, score], 0..1


@dataclass(frozen=True)
class Labelled:
    label: dict[str, Any]  # labels.current's row
    hazard: str | None  # the label's, else its incident's
    evidence: list[Evidence]
    # The incident's alert snapshots, for when its evidence is only clips and none yields a frame.
    fallback: list[Evidence] = field(default_factory=list)


def _from_file(edge: str, ident: str, cam: str, kind: str, ctype: str, at: float, meta: str, data: bytes) -> Evidence:
    boxes = json.loads(meta).get("boxes") or []
    return Evidence(bytes(data), ctype, kind, edge, cam, at, f"evidence-file:{edge}/{ident}", boxes)


def _alert_snapshots(tx: Tx, incident_id: int) -> list[Evidence]:
    rows = tx.execute(
        "SELECT ae.edge_id, ae.camera_id, ae.last_frame_at, ae.boxes, e.id, e.content_type, e.data "
        "FROM alert_events ae JOIN evidence e ON e.id = ae.evidence_id WHERE ae.incident_id = ? ORDER BY ae.id",
        (incident_id,),
    )
    return [
        Evidence(
            bytes(data),
            ctype,
            "snapshot",
            edge,
            cam,
            at,
            f"alert-snapshot:{eid}",
            [[b["x1"], b["y1"], b["x2"], b["y2"], b["score"]] for b in json.loads(boxes)],
        )
        for edge, cam, at, boxes, eid, ctype, data in rows
    ]


def _incident_evidence(tx: Tx, incident_id: int, clips: bool) -> tuple[list[Evidence], list[Evidence]]:
    """(the incident's uploaded files, clips only when asked; the fallback): its alerts' snapshots stand
    in when no file is left, and are the fallback when only clips are."""
    files = tx.execute(
        "SELECT f.edge_id, f.id, f.camera_id, f.kind, f.content_type, f.captured_at, f.meta, f.data "
        "FROM evidence_files f JOIN incident_alerts ia ON ia.edge_id = f.edge_id AND ia.alert_id = f.alert_id "
        "WHERE ia.incident_id = ? AND f.complete = 1 ORDER BY f.captured_at, f.id",
        (incident_id,),
    )
    found = [_from_file(*row) for row in files if row[3] == "snapshot" or clips]
    if not found:
        return _alert_snapshots(tx, incident_id), []
    if all(e.kind != "snapshot" for e in found):
        return found, _alert_snapshots(tx, incident_id)
    return found, []


def _file_evidence(tx: Tx, edge: str, ident: str, clips: bool) -> list[Evidence]:
    row = tx.one(
        "SELECT camera_id, kind, content_type, captured_at, meta, data FROM evidence_files "
        "WHERE edge_id = ? AND id = ?",
        (edge, ident),
    )
    if row is None:
        return []
    if row[1] != "snapshot" and not clips:
        return []
    return [_from_file(edge, ident, *row)]


def labelled(tx: Tx, since: float | None, with_clips: bool = True) -> Iterator[Labelled]:
    """Every current label made since `since` (by labelling time), with its evidence. Clips only go
    with false alarms: the frames around a real hazard may not show it yet. One label at a time, so
    a large export never holds every clip in memory."""
    for label in labels.current(tx, since):
        hazard = label["hazard"]
        if hazard is None and label["incident_id"] is not None:
            hazard = tx.scalar("SELECT hazard FROM incidents WHERE id = ?", (label["incident_id"],))
        clips = with_clips and label["verdict"] == "false_alarm"
        evidence: list[Evidence] = []
        fallback: list[Evidence] = []
        if label["evidence"]:
            evidence = _file_evidence(tx, label["evidence"]["edge_id"], label["evidence"]["id"], clips)
        elif label["incident_id"] is not None:
            evidence, fallback = _incident_evidence(tx, label["incident_id"], clips)
        yield Labelled(label, hazard, evidence, fallback)


def mark_exported(tx: Tx, label_ids: list[int], now: float) -> None:
    labels.mark_exported(tx, label_ids, now)
