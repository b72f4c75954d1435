"""The horizon zoom (edge/detect/zoom.py): crops of the band, regions mapped back to the frame, crops'
references kept, reset and stored with their camera's; tests/integration/test_reference_model.py runs it on
real frames through the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from hazardwatch.contract import Hazard
from hazardwatch.edge.camera_config import ZoomConfig
from hazardwatch.edge.detect import Detection, ImageResult
from hazardwatch.edge.detect.regions import RegionFilter
from hazardwatch.edge.detect.zoom import Crop, band_crops, merge, quiet_part
from hazardwatch.edge.reference import ReferenceBank, ReferencePolicy, part_id
from hazardwatch.edge.reference.store import ReferenceStore
from hazardwatch.manifest import ZoomSpec

pytestmark = pytest.mark.quick

SMOKE = Hazard.SMOKE


def test_three_half_width_crops_cover_the_band_edge_to_edge() -> None:
    crops = band_crops((0.3, 0.8), 3, 0.5)
    assert crops == (Crop(0.0, 0.3, 0.5, 0.8), Crop(0.25, 0.3, 0.75, 0.8), Crop(0.5, 0.3, 1.0, 0.8))
    assert band_crops((0.3, 0.8), 1, 1.0) == (Crop(0.0, 0.3, 1.0, 0.8),)


def test_a_region_found_in_a_crop_lands_where_it_is_in_the_frame() -> None:
    crop = Crop(0.25, 0.3, 0.75, 0.8)
    found = crop.to_frame(Detection(0.5, 0.5, 0.6, 0.7, 0.9))
    assert (found.x1, found.y1, found.x2, found.y2) == pytest.approx((0.5, 0.55, 0.55, 0.65))
    back = crop.from_frame(found)
    assert back is not None and (back.x1, back.y1, back.x2, back.y2) == pytest.approx((0.5, 0.5, 0.6, 0.7))
    clipped = crop.from_frame(Detection(0.1, 0.2, 0.3, 0.4, 0.9))  # over the crop's top-left corner
    assert clipped is not None and (clipped.x1, clipped.y1) == (0.0, 0.0)
    assert crop.from_frame(Detection(0.0, 0.0, 0.2, 0.2, 0.9)) is None  # left of and above the crop


def test_a_crop_is_cut_at_the_models_input_size() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[240:, 320:] = 255  # the bottom-right quarter is white
    part = Crop(0.5, 0.5, 1.0, 1.0).cut(frame, (640, 480))
    assert part.shape == (480, 640, 3) and part.min() == 255


def test_the_look_takes_a_crops_region_only_at_the_zoom_threshold_and_through_masks() -> None:
    full = ImageResult(0.1, [], np.zeros(4, np.float32), True, 0.26)
    crop = Crop(0.5, 0.3, 1.0, 0.8)
    strong = ImageResult(0.8, [Detection(0.2, 0.2, 0.4, 0.4, 0.8)], None, True, 0.26)
    weak = ImageResult(0.3, [Detection(0.6, 0.6, 0.8, 0.8, 0.3)], None, True, 0.26)
    merged = merge(full, [(crop, strong), (crop, weak)], 0.5, RegionFilter())
    assert merged.score == 0.8 and len(merged.detections) == 1
    assert merged.detections[0].x1 == pytest.approx(0.6) and merged.embedding is full.embedding
    learning = ImageResult(0.95, [Detection(0.2, 0.2, 0.4, 0.4, 0.95)], None, False)  # no reference yet: ignored
    assert merge(full, [(crop, learning)], 0.5, RegionFilter()) is full
    mask = ((0.5, 0.3), (1.0, 0.3), (1.0, 0.8), (0.5, 0.8))
    assert merge(full, [(crop, strong)], 0.5, RegionFilter(masks=(mask,))) is full  # masked on the frame
    assert not quiet_part(ImageResult(0.3, [], None, True), 0.5, 0.5) and quiet_part(weak, 1.0, 0.5)


def test_a_band_must_be_a_band() -> None:
    assert ZoomConfig().band == (0.3, 0.8)
    with pytest.raises(ValidationError, match="band must be"):
        ZoomConfig(band=(0.5, 0.55))
    with pytest.raises(ValidationError, match="leave parts of the band out"):
        ZoomSpec(crops=2, width=0.4, threshold=0.5)


def _learn(bank: ReferenceBank, key: str, n: int, shape: tuple[int, ...] = (2, 3)) -> None:
    for k in range(n):
        bank.learn(key, SMOKE, "day", "m@1", 0, np.full(shape, float(k), np.float32), 1000.0 * k)


def test_a_cameras_crops_are_reset_listed_and_counted_with_it() -> None:
    bank = ReferenceBank(ReferencePolicy(min_looks=4, min_interval_s=1.0, settle_looks=0))
    for key in ("cam", part_id("cam", 0), part_id("cam", 1), "cam2"):
        _learn(bank, key, 5)
    states = bank.states("cam", 9000.0)
    assert [s.part for s in states] == ["", "zoom0", "zoom1"] and all(s.ready for s in states)
    assert bank.nbytes("cam") == 3 * bank.nbytes("cam2")
    bank.reset("cam")
    assert bank.states("cam", 9000.0) == [] and bank.states("cam2", 9000.0) != []


def test_a_restart_loads_a_cameras_crops(tmp_path: Path) -> None:
    bank = ReferenceBank(ReferencePolicy(min_looks=4, min_interval_s=1.0, settle_looks=0))
    for key in ("cam", part_id("cam", 2)):
        _learn(bank, key, 5)
    assert ReferenceStore(tmp_path).save(bank) == 2
    again = ReferenceBank(ReferencePolicy(min_looks=4, min_interval_s=1.0, settle_looks=0))
    assert ReferenceStore(tmp_path).load(again, {"cam"}) == []
    assert [(s.part, s.looks) for s in again.states("cam", 9000.0)] == [("", 5), ("zoom2", 5)]
    ref = again.reference(part_id("cam", 2), SMOKE, "day", "m@1", 0)
    assert ref is not None and ref.looks == 5


def test_the_edge_loads_as_many_crop_references_as_a_manifest_may_ask_for() -> None:
    from hazardwatch.edge.reference.bank import MAX_PARTS

    (most,) = [m.le for m in ZoomSpec.model_fields["crops"].metadata if getattr(m, "le", None) is not None]
    assert most == MAX_PARTS
