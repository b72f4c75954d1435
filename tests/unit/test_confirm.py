"""Sliding-window vote and alert lifecycle, and the predictor that combines them with a model."""

from __future__ import annotations

import numpy as np
import pytest

from hazardwatch.contract import AlertState, Hazard
from hazardwatch.edge.config import CameraConfig, ConfirmConfig
from hazardwatch.edge.confirm.lifecycle import AlertLifecycle
from hazardwatch.edge.confirm.vote import SlidingVote
from hazardwatch.edge.detect import Detection
from hazardwatch.edge.detect.onnx_detector import OnnxDetector
from hazardwatch.edge.predictor import LookRequest, Predictor
from hazardwatch.harness.toy_models import paint_patch, red_patch_manifest

pytestmark = pytest.mark.quick

BOX = Detection(0.4, 0.4, 0.6, 0.6, 0.9)
ELSEWHERE = Detection(0.0, 0.0, 0.1, 0.1, 0.9)


def test_majority_of_overlapping_looks_confirms():
    vote = SlidingVote(ConfirmConfig(window=5, min_votes=3, threshold=0.5))
    assert vote.add(0, [BOX], ongoing=False) is None
    assert vote.add(1, [BOX], ongoing=False) is None
    assert vote.add(2, [ELSEWHERE], ongoing=False) is None  # does not overlap: no vote for BOX
    c = vote.add(3, [BOX], ongoing=False)
    assert c is not None and c.first_at == 0 and c.score == pytest.approx(2.7 / 5)


def test_low_scores_do_not_confirm_but_ongoing_threshold_is_lower():
    weak = Detection(0.4, 0.4, 0.6, 0.6, 0.7)
    vote = SlidingVote(ConfirmConfig(window=5, min_votes=3, threshold=0.5))
    for t in range(3):
        result = vote.add(t, [weak], ongoing=False)
    assert result is None  # 2.1 / 5 = 0.42 < 0.5
    assert vote.add(3, [weak], ongoing=True) is not None  # 2.8 / 5 >= 0.4


def test_a_weak_region_on_every_look_of_the_window_confirms():
    """A region just over its model's operating point (the reference path's 0.3) but under the vote's
    threshold counts as the threshold: every look of the window confirms it, one look fewer does not."""
    faint = Detection(0.4, 0.4, 0.6, 0.6, 0.3)
    vote = SlidingVote(ConfirmConfig(window=5, min_votes=3, threshold=0.5))
    for t in range(4):
        assert vote.add(t, [faint], ongoing=False) is None  # 4 x 0.5 / 5 = 0.4
    c = vote.add(4, [faint], ongoing=False)
    assert c is not None and c.score == pytest.approx(0.5) and c.first_at == 0
    gap = SlidingVote(ConfirmConfig(window=5, min_votes=3, threshold=0.5))
    results = [gap.add(t, [faint] if t != 2 else [ELSEWHERE], ongoing=False) for t in range(8)]
    assert results[:7] == [None] * 7 and results[7] is not None  # confirmed once the miss left the window
    # while an alert is open, four looks of five keep it (0.4 >= 0.5 x 0.8)
    assert gap.add(8, [ELSEWHERE], ongoing=True) is None  # not a region of this alert
    assert gap.add(9, [faint], ongoing=True) is not None


def test_lifecycle_new_update_end():
    cfg = ConfirmConfig(end_after_s=10, update_score_delta=0.1)
    vote, life = SlidingVote(ConfirmConfig(window=1, min_votes=1, threshold=0.5)), AlertLifecycle(cfg)
    ev = life.observe(0, vote.add(0, [BOX], False))
    assert ev.state == AlertState.NEW
    assert life.observe(1, vote.add(1, [BOX], True)) is None  # same score, same region: no news
    stronger = Detection(0.4, 0.4, 0.6, 0.6, 1.0)
    assert life.observe(2, vote.add(2, [stronger], True)).state == AlertState.UPDATE
    assert life.observe(3, vote.add(3, [ELSEWHERE], True)).state == AlertState.UPDATE  # new region
    assert life.observe(5, None) is None  # not yet clear for 10 s
    end = life.observe(13.5, None)
    assert end.state == AlertState.END and end.alert_id == ev.alert_id and end.score == 1.0
    assert life.observe(14, vote.add(14, [BOX], False)).alert_id != ev.alert_id


def test_lifecycle_says_still_seen_at_most_every_still_seen_s():
    """A steady hazard sends an update once per `still_seen_s`, so central knows it is still there."""
    cfg = ConfirmConfig(end_after_s=100, update_score_delta=0.1, still_seen_s=30)
    vote, life = SlidingVote(ConfirmConfig(window=1, min_votes=1, threshold=0.5)), AlertLifecycle(cfg)
    first = life.observe(0, vote.add(0, [BOX], False))
    sent = [t for t in range(1, 95) if life.observe(t, vote.add(t, [BOX], True)) is not None]
    assert sent == [30, 60, 90]  # a look per second, same score and region: one update per 30 s
    update = life.observe(120, vote.add(120, [BOX], True))
    assert update.state == AlertState.UPDATE and update.alert_id == first.alert_id and update.last_frame_at == 120


@pytest.fixture
def detector(tmp_path):
    return OnnxDetector(red_patch_manifest(tmp_path))


def test_predictor_confirms_patch_on_real_frames_and_respects_masks(detector, shared_data):
    import cv2

    frames = sorted((shared_data / "smoke-hpwren/unlabeled_hpwren").glob("*.jp*g"))[:8]
    images = [cv2.imread(str(p)) for p in frames]
    cams = [
        CameraConfig(id="open", source="rtsp://x/y", hazards={"fire": {}}),
        CameraConfig(
            id="masked",
            source="rtsp://x/y",
            hazards={"fire": {}},
            masks=[[(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)]],
        ),
    ]
    cfg = ConfirmConfig(window=3, min_votes=2, threshold=0.5, end_after_s=5)
    pred = Predictor(cams, {Hazard.FIRE: detector}, {(c.id, Hazard.FIRE): cfg for c in cams})
    events = {"open": [], "masked": []}
    candidates = []
    for t, img in enumerate(images):
        img = paint_patch(img, (0.4, 0.4, 0.55, 0.6)) if 2 <= t < 5 else img
        outs = pred.process([LookRequest(c.id, img, float(t), frozenset({Hazard.FIRE})) for c in cams])
        for o in outs:
            events[o.camera_id].extend(o.events)
        candidates.append(Hazard.FIRE in outs[0].candidates)
    events["open"].extend(pred.expire(20.0))
    states = [e.state for e in events["open"]]
    assert states[0] == AlertState.NEW and states[-1] == AlertState.END
    assert set(states[1:-1]) <= {AlertState.UPDATE}  # only for a score rising by update_score_delta
    scores = [e.score for e in events["open"][:-1]]
    assert scores == sorted(scores) and len({e.alert_id for e in events["open"]}) == 1
    new = events["open"][0]
    assert new.first_frame_at == 2.0 and new.last_frame_at == 3.0
    b = new.boxes[0]
    assert b.x1 <= 0.45 and b.x2 >= 0.5 and b.y1 <= 0.45 and b.y2 >= 0.55
    assert new.frame is not None and new.model_name == "red-patch"
    assert events["masked"] == []  # the patch lies inside the mask
    assert candidates[:3] == [False, False, True]  # a candidate asks for a burst until confirmed


def test_zone_restricts_and_tags(detector):
    img = np.full((240, 320, 3), 120, np.uint8)
    cam = CameraConfig(
        id="c",
        source="rtsp://x/y",
        hazards={"fire": {"zones": ["road"]}},
        zones=[{"id": "road", "polygon": [(0, 0.5), (1, 0.5), (1, 1), (0, 1)]}],
    )
    cfg = ConfirmConfig(window=1, min_votes=1, threshold=0.5)
    pred = Predictor([cam], {Hazard.FIRE: detector}, {("c", Hazard.FIRE): cfg})
    top = pred.process([LookRequest("c", paint_patch(img, (0.1, 0.1, 0.3, 0.3)), 0.0, frozenset({Hazard.FIRE}))])
    assert top[0].events == []
    low = pred.process([LookRequest("c", paint_patch(img, (0.1, 0.7, 0.3, 0.9)), 1.0, frozenset({Hazard.FIRE}))])
    assert [e.zone for e in low[0].events] == ["road"]
