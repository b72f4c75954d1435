"""`hazardwatch models review-sheet`: a view group's frames in name order, each with its overlay corner and
the region a reviewer reads magnified, and an index to copy names from into excluded.txt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hazardwatch.models.data import Sample
from hazardwatch.models.review_sheet import STAMP, region, write_review_sheets

ROOT = Path(__file__).resolve().parents[2]


def _frame(k: int, plume: bool) -> np.ndarray:
    """One camera's view (a ridge under a sky) with its time stamp's corner lit, and a white plume where
    the region to read lies when `plume`."""
    img = np.full((480, 640, 3), (200, 160, 120), np.uint8)
    img[300:] = (40, 90, 60)
    img[: STAMP[0], : STAMP[1]] = (0, 200, 200)  # the overlay corner, yellow
    cv2.putText(img, f"{k:02d}", (5, 10), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
    if plume:
        cv2.circle(img, (480, 250), 12, (255, 255, 255), -1)
    return img


def _data(tmp_path: Path, n_neg: int = 7) -> Path:
    """An HPWREN-shaped folder: unlabelled frames, two boxed ones, one camera view."""
    root = tmp_path / "smoke-hpwren"
    (root / "unlabeled_hpwren").mkdir(parents=True)
    (root / "smoke").mkdir()
    (root / "annotations_voc").mkdir()
    for k in range(n_neg):
        cv2.imwrite(str(root / "unlabeled_hpwren" / f"n{k:02d}.jpeg"), _frame(k, plume=k == 3))
    for k in range(2):
        cv2.imwrite(str(root / "smoke" / f"p{k}.jpeg"), _frame(10 + k, plume=True))
        (root / "annotations_voc" / f"p{k}.xml").write_text(
            "<annotation><size><width>640</width><height>480</height></size><object><name>smoke</name>"
            "<bndbox><xmin>468</xmin><ymin>238</ymin><xmax>492</xmax><ymax>262</ymax></bndbox></object></annotation>"
        )
    return root


@pytest.mark.quick
def test_sheets_show_each_frame_in_name_order_with_its_region_magnified(tmp_path):
    root = _data(tmp_path)
    samples = [Sample(p, False) for p in sorted((root / "unlabeled_hpwren").iterdir(), reverse=True)]
    part = region(0.625, 0.4, 0.875, 0.65)  # 160 x 120 px around where the plume is drawn
    sheets, index = write_review_sheets(samples, part, tmp_path / "out" / "view000", width=320, columns=3, rows=2)
    assert len(sheets) == 2  # 7 frames, 6 per sheet
    rows = [line.split("\t") for line in index.read_text().splitlines()]
    assert [r[2] for r in rows] == [f"n{k:02d}.jpeg" for k in range(7)] and {r[1] for r in rows} == {"neg"}
    sheet = cv2.imread(str(sheets[0]))
    stamp_h, part_h = 320 * STAMP[0] // STAMP[1], 240  # the region is 160x120 px, magnified 2x
    assert sheet.shape == (2 * (stamp_h + part_h), 3 * 320, 3)
    # frame n03's plume (the centre of the region) is white in its tile, the others' centre is sky
    for k in range(6):
        r, c = divmod(k, 3)
        centre = sheet[r * (stamp_h + part_h) + stamp_h + 120, c * 320 + 160]
        assert (centre.min() > 230) == (k == 3), (k, centre)
        corner = sheet[r * (stamp_h + part_h) + 2, c * 320 + 300]  # the overlay corner, magnified
        assert corner[2] > 150 and corner[0] < 60, (k, corner)
    last = cv2.imread(str(sheets[1]))
    assert last.shape == (stamp_h + part_h, 3 * 320, 3) and last[:, 320:].max() == 0  # one frame, two blanks


@pytest.mark.quick
def test_a_region_outside_the_frame_is_refused():
    with pytest.raises(ValueError, match="region"):
        region(0.5, 0.2, 0.4, 0.6)
    with pytest.raises(ValueError, match="region"):
        region(0.0, 0.0, 1.2, 0.5)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "models", "review-sheet", *args],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip


def test_the_command_finds_the_view_group_and_leaves_reviewed_frames_out(tmp_path):
    pytest.importorskip("scipy", reason="view grouping needs scipy (the [train] extra)")
    root = _data(tmp_path)
    excluded = tmp_path / "excluded.txt"
    excluded.write_text("n03.jpeg\ta plume at the right\n")
    out = _cli("--data", str(root), "--view", "view001", "--exclude", str(excluded), "--out", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["frames"] == 6 and len(res["sheets"]) == 1
    names = [line.split("\t")[2] for line in Path(res["index"]).read_text().splitlines()]
    assert "n03.jpeg" not in names and all(n.startswith("n") for n in names)
    both = _cli("--data", str(root), "--view", "view001", "--frames", "all", "--out", str(tmp_path / "a"))
    assert json.loads(both.stdout)["frames"] == 9
    bad = _cli("--data", str(root), "--view", "view042", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "view groups: view001" in bad.stderr
    wrong = _cli("--data", str(root), "--view", "view001", "--region", "0.9", "0.1", "0.2", "0.5", "--out", "x")
    assert wrong.returncode == 2 and "--region" in wrong.stderr


def test_a_reviewed_box_makes_its_frame_a_positive_drawn_with_its_box(tmp_path):
    pytest.importorskip("scipy", reason="view grouping needs scipy (the [train] extra)")
    root = _data(tmp_path)
    excluded, boxes = tmp_path / "excluded.txt", tmp_path / "boxes.txt"
    excluded.write_text("n03.jpeg\ta plume at the right\n")
    boxes.write_text("n03.jpeg\t460 230 500 270\tthe plume at the right\n")
    args = ["--data", str(root), "--view", "view001", "--frames", "positives", "--exclude", str(excluded)]
    out = _cli(*args, "--boxes", str(boxes), "--region", "0.625", "0.4", "0.875", "0.65", "--out", str(tmp_path / "p"))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    rows = [line.split("\t") for line in Path(res["index"]).read_text().splitlines()]
    assert [(r[1], r[2]) for r in rows] == [("pos", "n03.jpeg"), ("pos", "p0.jpeg"), ("pos", "p1.jpeg")]
    sheet = cv2.imread(res["sheets"][0])
    stamp_h = 300 * STAMP[0] // STAMP[1]
    # the region (400-560, 192-312 px) is magnified 300/160: the box's left edge at x 460 -> 112 in the tile
    edge = sheet[stamp_h + round((250 - 192) * 300 / 160), round((460 - 400) * 300 / 160)]
    assert edge[2] > 200 and edge[0] < 60 and edge[1] < 60, edge
    bad = boxes.with_name("bad.txt")
    bad.write_text("n03.jpeg\t460 230 700 270\tpast the right edge\n")
    out = _cli(*args, "--boxes", str(bad), "--out", str(tmp_path / "q"))
    assert out.returncode == 2 and "n03.jpeg: reviewed box" in out.stderr and "640x480" in out.stderr
