"""Contact sheets for reading a view group's frames by eye: the overlay's time and a magnified region.

Why: the unlabelled HPWREN frames used as smoke negatives are often minutes apart on the day of the
fire their camera's boxed frames show, and only some of those frames were boxed (docs/models.md,
1.8.0). Reading a view group frame by frame, with the camera's own time stamp and the part of the
picture where its plumes rise, is how the second review found 75 validation frames that held smoke.
The sheets and their index (`<n><TAB><pos|neg><TAB><file name>`) are what a reviewer reads and then
copies names from into `excluded.txt`; a frame's box (the dataset's or a reviewer's, `boxes.txt`) is drawn
in red on its tile, so a reviewed box is checked the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from hazardwatch.edge.detect.zoom import Crop
from hazardwatch.models.data import Sample, read_bgr

STAMP = (12, 120)  # rows, columns of the top-left corner where HPWREN cameras print their time


def region(x1: float, y1: float, x2: float, y2: float) -> Crop:
    """The part of the frame to magnify, relative (0..1, top-left origin); refused unless inside the frame."""
    if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
        raise ValueError(f"region ({x1}, {y1}, {x2}, {y2}): expected 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
    return Crop(x1, y1, x2, y2)


def _tile(sample: Sample, n: int, part: Crop, width: int) -> np.ndarray:
    frame = read_bgr(sample.path)
    h, w = frame.shape[:2]
    stamp = cv2.resize(frame[: STAMP[0], : STAMP[1]], (width, max(1, width * STAMP[0] // STAMP[1])))
    height = max(1, round(width * (part.y2 - part.y1) * h / ((part.x2 - part.x1) * w)))
    zoomed = part.cut(frame, (width, height))
    if sample.box is not None:  # the labelled or reviewed box, in red, so a reviewer can check it
        sx, sy = width / (part.x2 - part.x1), height / (part.y2 - part.y1)
        x1, y1, x2, y2 = sample.box
        corners = (round((x1 - part.x1) * sx), round((y1 - part.y1) * sy)), (
            round((x2 - part.x1) * sx), round((y2 - part.y1) * sy)
        )  # fmt: skip
        cv2.rectangle(zoomed, *corners, (0, 0, 255), 1)
    tile = np.concatenate([stamp, zoomed])
    label = f"{n} {'P' if sample.positive else 'N'}"
    cv2.putText(tile, label, (4, tile.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
    return tile


def write_review_sheets(
    samples: Sequence[Sample], part: Crop, out_prefix: Path, width: int = 300, columns: int = 4, rows: int = 6
) -> tuple[list[Path], Path]:
    """PNG sheets of `columns` x `rows` tiles (frames in file-name order) and the index; (sheets, index)."""
    if not samples:
        raise ValueError("no frames to put on a review sheet")
    ordered = sorted(samples, key=lambda s: s.path.name)
    tiles = [_tile(s, n, part, width) for n, s in enumerate(ordered)]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    lines = [np.concatenate(tiles[k : k + columns], 1) for k in range(0, len(tiles), columns)]
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    sheets = []
    for k in range(0, len(lines), rows):
        path = out_prefix.with_name(f"{out_prefix.name}-{k // rows}.png")
        cv2.imwrite(str(path), np.concatenate(lines[k : k + rows]))
        sheets.append(path)
    index = out_prefix.with_name(f"{out_prefix.name}.tsv")
    index.write_text(
        "".join(f"{n}\t{'pos' if s.positive else 'neg'}\t{s.path.name}\n" for n, s in enumerate(ordered)),
        encoding="utf-8",
    )
    return sheets, index
