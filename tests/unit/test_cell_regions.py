"""Score-map cells become one box per plume: seeds at the threshold, grown over their edge, merged across
a one-cell gap, scored by the best cell."""

from __future__ import annotations

import numpy as np
import pytest

from hazardwatch.edge.detect.decode import regions_from_map
from hazardwatch.edge.detect.regions import cell_regions

THR = 0.8


def grid(cells: dict[tuple[int, int], float], shape: tuple[int, int] = (15, 20)) -> np.ndarray:
    m = np.full(shape, 0.05, np.float32)
    for (r, c), v in cells.items():
        m[r, c] = v
    return m


def test_a_plume_of_touching_cells_is_one_box_with_its_best_score() -> None:
    plume = {(5, 8): 0.95, (5, 9): 0.85, (6, 9): 0.99, (7, 10): 0.82, (4, 8): 0.81}
    (box,) = cell_regions(grid(plume), THR)
    assert box[:4] == pytest.approx((8 / 20, 4 / 15, 11 / 20, 8 / 15))
    assert box[4] == pytest.approx(0.99)


def test_the_plume_edge_just_under_the_threshold_joins_but_does_not_seed() -> None:
    # one cell passes; its neighbours at 0.75 (>= 0.9 * 0.8) are the thin edge of the same plume
    plume = {(5, 8): 0.9, (5, 9): 0.75, (5, 10): 0.75, (6, 10): 0.74}
    (box,) = cell_regions(grid(plume), THR)
    assert box[:4] == pytest.approx((8 / 20, 5 / 15, 11 / 20, 7 / 15))
    assert box[4] == pytest.approx(0.9)  # growing never lifts the score
    # the same edge with no seed is no region at all
    assert cell_regions(grid({(5, 9): 0.75, (5, 10): 0.75}), THR) == []
    # and below the grow level a neighbour stays out
    (alone,) = cell_regions(grid({(5, 8): 0.9, (5, 9): 0.7}), THR)
    assert alone[:4] == pytest.approx((8 / 20, 5 / 15, 9 / 20, 6 / 15))


def test_cells_one_gap_apart_merge_and_far_ones_stay_apart() -> None:
    near = {(5, 8): 0.9, (5, 10): 0.95}  # one quiet cell between them
    (box,) = cell_regions(grid(near), THR)
    assert box[:4] == pytest.approx((8 / 20, 5 / 15, 11 / 20, 6 / 15)) and box[4] == pytest.approx(0.95)
    far = {(5, 2): 0.9, (5, 10): 0.95, (12, 10): 0.85}
    boxes = cell_regions(grid(far), THR)
    assert len(boxes) == 3
    assert sorted(round(b[4], 2) for b in boxes) == [0.85, 0.9, 0.95]
    assert len(cell_regions(grid(far), THR, gap=0)) == 3
    assert len(cell_regions(grid(near), THR, gap=0)) == 2


def test_a_chain_of_merges_ends_in_one_box() -> None:
    # A and C are far apart, B sits within a gap of both: whichever comes first, one box results
    chain = {(5, 2): 0.99, (5, 4): 0.85, (5, 6): 0.9}
    (box,) = cell_regions(grid(chain), THR)
    assert box[:4] == pytest.approx((2 / 20, 5 / 15, 7 / 20, 6 / 15)) and box[4] == pytest.approx(0.99)


def test_regions_from_map_gives_detections_inside_the_image() -> None:
    m = grid({(0, 0): 0.9, (14, 19): 1.0, (0, 19): 0.3})
    dets = regions_from_map(m, THR)
    assert len(dets) == 2
    for d in dets:
        assert 0 <= d.x1 < d.x2 <= 1 and 0 <= d.y1 < d.y2 <= 1 and d.score >= THR
    assert regions_from_map(np.zeros((15, 20), np.float32), THR) == []
