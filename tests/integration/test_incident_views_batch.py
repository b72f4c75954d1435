"""Incident views read for a batch at once (as planning reads a burst's notification payloads), on a real
store (SQLite and PostgreSQL): each incident's view in the batch is the one it has alone (cameras,
evidence, successors, suppressions never leak between incidents), and the batch costs the same number of
statements however many incidents it holds."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from test_central_services import CFG, alert, db  # noqa: F401 (the store fixture)

from hazardwatch.central.services import incidents, views
from hazardwatch.central.store import Database
from hazardwatch.central.store.database import Tx

FAR = {"lat": 30.0, "lon": 100.0, "bearing_deg": 0.0, "fov_deg": 60.0}


def apply(store: Database, a, now: float) -> int:
    with store.tx() as tx:
        return incidents.apply_alert(tx, a, CFG, now).incident_id


def snapshot(k: int) -> str:
    ok, jpg = cv2.imencode(".jpg", np.full((24, 32, 3), k * 9 % 255, np.uint8))
    assert ok
    return base64.b64encode(jpg.tobytes()).decode()


def counted(tx: Tx) -> list[str]:
    """Every statement this transaction runs from now on."""
    seen: list[str] = []
    run = tx.execute

    def execute(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        seen.append(sql)
        return run(sql, params)

    tx.execute = execute  # type: ignore[method-assign]
    return seen


def test_views_of_a_batch_match_each_alone_in_a_fixed_number_of_statements(db):  # noqa: F811 (the imported fixture)
    first = apply(db, alert(0, at=1000), 1000)
    with db.tx() as tx:
        incidents.act(tx, first, "resolve", "amy", "", 1040, 0.0)
    successor = apply(db, alert(1, state="update", at=1070, score=0.9), 1070)
    far = apply(db, alert(0, edge="e9", cam="far", alert_id="alert-far", place=FAR, at=1000), 1000)
    for k in range(1, 13):  # twelve snapshots: a view keeps the ten newest
        a = alert(k, edge="e9", cam="far", alert_id="alert-far", state="update", place=FAR, at=1000 + k)
        a = a.model_copy(update={"snapshot_jpeg_b64": snapshot(k)})
        assert apply(db, a, 1000 + k) == far
    with db.tx() as tx:
        incidents.act(tx, far, "false_alarm", "amy", "a chimney", 1100, 600.0)

    ids = [first, successor, far]
    with db.tx() as tx:
        alone = {i: views.incident_view(tx, i, "http://central", "Futian") for i in ids}
        one = counted(tx)
        views.incident_views(tx, [far], "http://central", "Futian")
        n_one = len(one)
        batch_log = counted(tx)
        batch = views.incident_views(tx, [*ids, 999_999], "http://central", "Futian")
    assert sorted(batch) == sorted(ids)  # an id that does not exist is left out
    for i in ids:
        assert batch[i] == alone[i], i
    assert len(batch_log) == n_one <= 7
    assert batch[first]["successor_ids"] == [successor] and batch[successor]["successor_ids"] == []
    assert [c["camera_id"] for c in batch[far]["cameras"]] == ["far"]
    assert [c["camera_id"] for c in batch[successor]["cameras"]] == ["north"]  # the closed one gave it up
    assert len(batch[far]["evidence"]) == 10 and batch[first]["evidence"] == []
    ats = [e["at"] for e in batch[far]["evidence"]]
    assert ats == sorted(ats, reverse=True) and ats[0] == 1012
    assert [s["incident_id"] for s in batch[far]["suppressions"]] == [far]
    assert batch[first]["suppressions"] == [] and batch[successor]["suppressions"] == []
