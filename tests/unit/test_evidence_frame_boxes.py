"""A clip records each frame's own regions (meta frame_boxes), as the engine reports them after each
look, and closes only once its last frame's regions are known."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_evidence import config, event, frame

from hazardwatch.contract import Hazard
from hazardwatch.edge.detect import Detection
from hazardwatch.edge.evidence import EvidenceStore

pytestmark = pytest.mark.quick


def box(k: int) -> Detection:
    return Detection(0.1 * k, 0.2, 0.1 * k + 0.2, 0.5, 0.5 + 0.05 * k)


def clip_meta(store: EvidenceStore) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        clips = [i for i in store.items() if i["kind"] == "clip"]
        if clips:
            return json.loads(clips[0]["meta"])
        time.sleep(0.05)
    raise AssertionError("no clip was saved")


def test_each_clip_frame_carries_the_regions_of_its_own_look(tmp_path: Path) -> None:
    store = EvidenceStore(config(tmp_path, frames_after=2, buffer_frames=3, buffer_max_side=160))
    store.codec = None  # the JPEG tar is enough here: the boxes are in the meta
    for k in range(5):
        store.observe("cam", frame(k), 90.0 + k)
        # a fire model found nothing; smoke found box(k) except in look 3
        store.note_regions("cam", 90.0 + k, {Hazard.SMOKE: [box(k)] if k != 3 else [], Hazard.FIRE: []})
    store.on_alert(event("new", frame(99), at=94.0), "cam", "e1")
    store.observe("cam", frame(5), 95.0)
    store.note_regions("cam", 95.0, {Hazard.SMOKE: [box(5)]})
    store.observe("cam", frame(6), 96.0)  # the clip has its frames but waits for this look's regions
    time.sleep(0.2)
    assert [i for i in store.items() if i["kind"] == "clip"] == []
    store.note_regions("cam", 96.0, {Hazard.SMOKE: [box(6), box(1)]})
    meta = clip_meta(store)
    store.close()
    rows = meta["frame_boxes"]
    assert (meta["before"], meta["after"], len(rows)) == (3, 2, 5)
    want = [[box(2)], [], [box(4)], [box(5)], [box(6), box(1)]]
    for got, dets in zip(rows, want, strict=True):
        assert got == [[d.x1, d.y1, d.x2, d.y2, round(d.score, 4)] for d in dets]


def test_a_look_whose_regions_never_came_is_unknown_not_empty(tmp_path: Path) -> None:
    store = EvidenceStore(config(tmp_path, frames_after=0, buffer_frames=3, buffer_max_side=160))
    store.codec = None
    store.observe("cam", frame(0), 90.0)
    store.note_regions("cam", 90.0, {Hazard.SMOKE: [box(1)]})
    store.observe("cam", frame(1), 91.0)  # inference failed: no regions for this look
    store.on_alert(event("new", frame(99), at=91.0), "cam", "e1")
    meta = clip_meta(store)
    store.close()
    assert meta["frame_boxes"][0] == [[0.1, 0.2, 0.30000000000000004, 0.5, 0.55]]
    assert meta["frame_boxes"][1] is None


def quiet_items(store: EvidenceStore, n: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = [i for i in store.items() if i["state"] == "quiet"]
        if len(items) >= n:
            return items
        time.sleep(0.05)
    raise AssertionError(f"{n} quiet snapshots expected, have {store.items()}")


def test_a_share_of_quiet_looks_is_kept_for_labelling_named_after_the_likeliest_miss(tmp_path: Path) -> None:
    off = EvidenceStore(config(tmp_path / "off", frames_after=0))
    assert not any(off.quiet_look("cam", frame(k), 90.0 + k, {Hazard.SMOKE: 0.3}) for k in range(200))
    assert off.items() == []
    off.close()

    store = EvidenceStore(config(tmp_path, frames_after=0, quiet_share=0.05))
    kept = sum(
        store.quiet_look("cam", frame(k % 7), 90.0 + k, {Hazard.SMOKE: 0.3, Hazard.FIRE: 0.1}) for k in range(2000)
    )
    assert 60 <= kept <= 145  # binomial(2000, 0.05): mean 100, sd 9.7
    items = quiet_items(store, kept)
    store.close()
    assert len(items) == kept
    one = items[0]
    meta = json.loads(one["meta"])
    assert (one["kind"], one["hazard"], one["content_type"]) == ("snapshot", "smoke", "image/jpeg")
    assert meta["scores"] == {"smoke": 0.3, "fire": 0.1} and meta["width"] == 320
    assert one["alert_id"].startswith("quiet-cam-")
