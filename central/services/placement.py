"""Where an alert goes: its own incident, another open one, a reopened or a new one (rules in
`incidents/correlate.py`, recurrence and false-alarm suppressions in docs/central.md). Reads only; the
timeline events it decides on go to the caller's `event` sink, which writes them with the batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.incidents.correlate import SYSTEM, Candidate, Choice, Member, Region, choose
from hazardwatch.central.incidents.suppress import judge
from hazardwatch.central.services import suppressions
from hazardwatch.central.services.sqlin import matching
from hazardwatch.central.store import Tx
from hazardwatch.contract import Alert

EventSink = Callable[[int, float, str, str, dict], None]


def candidates(tx: Tx, alert: Alert, cfg: CentralConfig, now: float) -> list[Candidate]:
    """Incidents a new alert could join: the same camera's or those seen nearby, recently.

    A bounding box around the camera (the correlation distance) narrows the search in SQL; the exact
    rules run in `correlate.choose`.
    """
    c = cfg.correlation
    horizon = alert.last_frame_at - max(c.same_camera_window_s, c.cross_camera_window_s)
    clauses = ["(edge_id = ? AND camera_id = ? AND last_at >= ?)"]
    params: list = [alert.edge_id, alert.camera_id, horizon]
    if alert.lat is not None and alert.lon is not None:
        dlat = c.cross_camera_distance_km / 111.0
        dlon = c.cross_camera_distance_km / (111.0 * max(0.05, math.cos(math.radians(alert.lat))))
        clauses.append("(lat BETWEEN ? AND ? AND lon BETWEEN ? AND ? AND last_at >= ?)")
        params += [alert.lat - dlat, alert.lat + dlat, alert.lon - dlon, alert.lon + dlon, horizon]
    nearby = {
        r[0]
        for r in tx.execute(f"SELECT DISTINCT incident_id FROM incident_alerts WHERE {' OR '.join(clauses)}", params)
    }
    if not nearby:
        return []
    where, params = matching(tx, "id", sorted(nearby))
    rows = tx.execute(
        f"SELECT id, hazard, state, last_alert_at, resolved_at, resolved_by FROM incidents WHERE {where} "
        "AND hazard = ? AND (state IN ('open', 'acknowledged') OR resolved_at >= ?)",
        [*params, alert.hazard.value, now - c.reopen_window_s],
    )
    if not rows:
        return []
    ids = [r[0] for r in rows]
    where, params = matching(tx, "incident_id", ids)
    members: dict[int, list[Member]] = {i: [] for i in ids}
    for inc_id, edge_id, alert_id, camera_id, boxes, last_at, lat, lon in tx.execute(
        "SELECT incident_id, edge_id, alert_id, camera_id, boxes, last_at, lat, lon FROM incident_alerts "
        f"WHERE {where}",
        params,
    ):
        regions = tuple(Region(b["x1"], b["y1"], b["x2"], b["y2"]) for b in json.loads(boxes))
        members[inc_id].append(Member(edge_id, alert_id, f"{edge_id}/{camera_id}", regions, last_at, lat, lon))
    return [Candidate(r[0], r[1], r[2], r[3], r[4], r[5], tuple(members[r[0]])) for r in rows]


def _suppression_verdict(
    tx: Tx, alert: Alert, me: Member, cfg: CentralConfig, now: float, event: EventSink, active: suppressions.Active
) -> tuple[str, int | None, int | None]:
    """The strongest verdict of the camera's active false-alarm suppressions (break > quiet > outside),
    with the suppression's incident and id; `active` holds the batch's (its docstring says what it sees)."""
    fa = cfg.false_alarm
    quiet = None
    for s in active.of(tx, alert.edge_id, alert.camera_id, alert.hazard.value, now):
        verdict = judge(
            s, me.camera, alert.hazard.value, me.regions, alert.score, now, fa.break_score_margin, fa.break_area_factor
        )
        if verdict == "break":
            active.end(tx, s, SYSTEM, f"broken through by a stronger detection (score {alert.score:.2f})", now)
            event(s.incident_id, now, "suppression_broken", SYSTEM, {"suppression_id": s.id, "score": alert.score})
            return "break", s.incident_id, s.id
        if verdict == "quiet" and quiet is None:
            quiet = s
    if quiet is not None:
        suppressions.record_quiet(tx, quiet.id, now)
        return "quiet", quiet.incident_id, quiet.id
    return "outside", None, None


def _recurrence_target(tx: Tx, alert: Alert, me: Member, closed_id: int, cfg: CentralConfig, now: float) -> Choice:
    """Where a hazard still seen after its incident was closed goes: the closed incident's open successor,
    another open incident it matches, or a new incident linked to the closed one."""
    successor = tx.scalar(
        "SELECT id FROM incidents WHERE previous_id = ? AND state IN ('open', 'acknowledged') ORDER BY id DESC",
        (closed_id,),
    )
    if successor is not None:
        return Choice("attach", successor)
    others = [c for c in candidates(tx, alert, cfg, now) if c.id != closed_id]
    choice = choose(me, alert.hazard.value, others, cfg.correlation)
    if choice.action == "attach":
        return choice
    return Choice("new", previous_id=closed_id)


def stays(alert: Alert, closed: tuple[str, float] | None) -> bool:
    """An alert already in an incident stays there without reading the store, unless an operator closed
    that incident (`closed`: state, resolved_at) and this is a sighting after the close."""
    return closed is None or alert.state.value == "end" or alert.last_frame_at <= closed[1]


def for_attached(
    tx: Tx,
    alert: Alert,
    me: Member,
    own: int,
    closed: tuple[str, float] | None,
    cfg: CentralConfig,
    now: float,
    event: EventSink,
    active: suppressions.Active,
) -> tuple[Choice, dict]:
    """Where an alert already in incident `own` goes; `closed` is (state, resolved_at) when an operator
    closed `own`."""
    if closed is None or stays(alert, closed):
        return Choice("attach", own), {}
    verdict, _sup_incident, sup_id = _suppression_verdict(tx, alert, me, cfg, now, event, active)
    if verdict == "quiet":
        return Choice("attach", own), {"suppressed_by": sup_id}
    reason = "stronger_than_false_alarm" if verdict == "break" else f"still_seen_after_{closed[0]}"
    return _recurrence_target(tx, alert, me, own, cfg, now), {"reason": reason}


def for_unattached(
    tx: Tx, alert: Alert, me: Member, cfg: CentralConfig, now: float, event: EventSink, active: suppressions.Active
) -> tuple[Choice, dict]:
    """Where an alert no incident holds yet goes."""
    if alert.state.value == "end":
        return choose(me, alert.hazard.value, candidates(tx, alert, cfg, now), cfg.correlation), {}
    verdict, sup_incident, sup_id = _suppression_verdict(tx, alert, me, cfg, now, event, active)
    if verdict == "quiet" and sup_incident is not None:
        return Choice("attach", sup_incident), {"suppressed_by": sup_id}
    choice = choose(me, alert.hazard.value, candidates(tx, alert, cfg, now), cfg.correlation)
    if verdict == "break":
        if choice.action == "new":
            choice = Choice("new", previous_id=sup_incident)
        return choice, {"reason": "stronger_than_false_alarm"}
    if choice.action == "new" and choice.previous_id is not None:
        return choice, {"reason": "seen_again_after_close"}
    return choice, {}
