"""An operator's false alarm teaches the edges: one learn_normal command per alert of the incident.

Why: central's suppression (services/suppressions.py) keeps the same false alarm off the screen for
a while; the camera's own reference (edge/reference/) makes its model stop seeing it at all. The
command names the edge's alert, whose look the edge still holds (docs/models.md). Best effort: an
edge that restarted since, or a command the broker did not take, only means the camera keeps
relying on the suppression; nothing else depends on it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from hazardwatch.central.store import Tx
from hazardwatch.contract import Hazard, LearnNormalCommand


@dataclass(frozen=True)
class Teach:
    edge_id: str
    payload: bytes


def learn_normal_commands(tx: Tx, incident_id: int, actor: str, note: str) -> list[Teach]:
    """A learn_normal command for every alert behind the incident. No box: the edge teaches every region
    of the alert's latest look, which it holds (central only keeps the regions of the events it got)."""
    rows = tx.execute(
        "SELECT a.edge_id, a.alert_id, a.camera_id, i.hazard FROM incident_alerts a "
        "JOIN incidents i ON i.id = a.incident_id WHERE a.incident_id = ? ORDER BY a.edge_id, a.alert_id",
        (incident_id,),
    )
    out = []
    for edge_id, alert_id, camera_id, hazard in rows:
        command = LearnNormalCommand(
            edge_id=edge_id,
            sent_at=time.time(),
            command_id=uuid.uuid4().hex,
            camera_id=camera_id,
            hazard=Hazard(hazard),
            alert_id=alert_id,
            reason=f"incident {incident_id} marked false alarm by {actor}: {note}"[:256],
        )
        out.append(Teach(edge_id, command.model_dump_json().encode()))
    return out
