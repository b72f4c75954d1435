"""The HPWREN time-stamp reader (hazardwatch/models/stamps.py) and the list it wrote (models/smoke-hpwren/stamps.txt).

The reader gives the time a person read off the stamp of labelled frames (boxes.txt), refuses a frame whose
stamp is gone, and the committed list names every frame of the dataset. The frames live in
../shared/data/smoke-hpwren; the tests that read them are skipped with the reason when it is absent.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from hazardwatch.models.stamps import (
    FOLDERS,
    TEMPLATES,
    find_frames,
    learn_templates,
    load_templates,
    read_labels,
    read_stamp,
    read_times,
    save_templates,
)

MODEL = Path(__file__).resolve().parents[2] / "models" / "smoke-hpwren"
LABELS = [MODEL / "boxes.txt", MODEL / "boxes-validation.txt"]
# One labelled frame per fire day, both stamp sizes (small: ~5 px digits, medium: ~9 px).
FRAMES = (
    "ck0twy1weu9vp0701krywkzc2.jpeg",  # small, Mt Woodson East 2018-06-14
    "ck0qbs48cg77e0838oafu2o79.jpeg",  # medium, Otay Mountain South 2018-07-17
    "ck0ndr8cx6ge80944mnvgjagt.jpeg",  # small, Santiago Peak East 2018-07-25
    "ck0nfnpcn812v07012lv3lg2c.jpeg",  # small, Santiago Peak South 2018-08-06
    "ck0qc67xifj9p0863ryi72c0r.jpeg",  # small, Mt Woodson North 2018-11-12
    "ck0tzu3bwsl9p0863wo7anui1.jpeg",  # small, 2019-05-29
    "ck0m0ggqtlsfa0721wsoqhuc5.jpeg",  # medium, Mt Laguna 2019-07-14 (glare nearby)
    "ck0qc5mekhlk70944yg8vbe0x.jpeg",  # medium, Mt Laguna 2019-07-15
    "ck0ovrsrdrv130794spl1jgu8.jpeg",  # medium, Los Pinos 2019-08-09
    "ck0ncj1xx6azt0701nkm01ev2.jpeg",  # small, Lyons Peak South 2019-08-14
)


@pytest.fixture(scope="module")
def hpwren(shared_data: Path) -> dict[str, Path]:
    root = shared_data / "smoke-hpwren"
    if not root.is_dir():
        pytest.skip(f"{root} missing: the HPWREN frames are not in the shared data")
    return find_frames(root)


def _frame(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


@pytest.mark.data
def test_labelled_frames_read_as_the_human_did(hpwren):
    labels = read_labels(LABELS)
    templates = load_templates()
    for name in FRAMES:
        reading = read_stamp(_frame(hpwren[name]), templates)
        assert reading.time == labels[name], (name, reading)
        assert reading.reason is None and reading.confidence > 0.1


@pytest.mark.data
def test_a_frame_whose_stamp_is_blanked_is_refused(hpwren):
    frame = _frame(hpwren[FRAMES[1]])
    assert read_stamp(frame, load_templates()).time is not None
    frame[:40, :260] = 0
    reading = read_stamp(frame, load_templates())
    assert reading.time is None and reading.reason


@pytest.mark.quick
def test_a_black_or_noisy_frame_is_refused():
    templates = load_templates()
    assert read_stamp(np.zeros((480, 640, 3), np.uint8), templates).time is None
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert read_stamp(noise, templates).time is None


@pytest.mark.quick
def test_the_committed_templates_are_small_and_load_the_same_after_a_round_trip(tmp_path):
    assert TEMPLATES.stat().st_size < 16_000
    templates = load_templates()
    assert {"small", "medium"} <= set(templates.glyphs) and templates.examples > 0
    save_templates(templates, tmp_path / "a.npz")
    save_templates(load_templates(tmp_path / "a.npz"), tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()  # deterministic bytes


@pytest.mark.quick
def test_labels_keep_only_lines_with_a_time_to_the_second(tmp_path):
    listing = tmp_path / "boxes.txt"
    listing.write_text(
        "# comment 2018-01-01 00:00:00\n"
        "a.jpeg\t1 2 3 4\tview021 Mt Woodson East 2018-07-20 13:19:20 (stamp; note said 13:49) plume\n"
        "b.jpeg\t1 2 3 4\tview017 11:18 first small puff\n",
        encoding="utf-8",
    )
    assert read_labels([listing]) == {"a.jpeg": datetime(2018, 7, 20, 13, 19, 20)}


@pytest.mark.data
def test_templates_learnt_from_labels_need_both_sizes_digits(hpwren):
    labels = read_labels(LABELS)
    some = [(_frame(hpwren[n]), labels[n]) for n in FRAMES[:2]]
    with pytest.raises(ValueError, match="no labelled frame shows digit"):
        learn_templates(some)


@pytest.mark.data
def test_the_stamp_list_names_every_frame_with_a_time_or_a_dash(hpwren):
    listed: dict[str, str] = {}
    for line in (MODEL / "stamps.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        name, when, confidence = line.split("\t")
        float(confidence)
        if when != "-":
            datetime.strptime(when, "%Y-%m-%d %H:%M:%S")
        listed[name] = when
    on_disk = {p.name for folder in FOLDERS for p in (hpwren[FRAMES[0]].parents[1] / folder).glob("*.jp*g")}
    assert set(listed) == on_disk == set(hpwren)
    assert list(listed) == sorted(listed)
    given = sum(1 for w in listed.values() if w != "-")
    assert given > 0.8 * len(listed)


def test_read_times_leaves_refused_frames_out_and_names_a_bad_line(tmp_path: Path) -> None:
    listing = tmp_path / "stamps.txt"
    listing.write_text("# header\na.jpeg\t2018-07-25 12:13:28\t0.31\nb.jpeg\t-\t0.02\n", encoding="utf-8")
    assert read_times(listing) == {"a.jpeg": datetime(2018, 7, 25, 12, 13, 28)}
    listing.write_text("a.jpeg\t2018-07-25 25:13:28\t0.31\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"stamps.txt:1: .*25:13:28"):
        read_times(listing)
    listing.write_text("a.jpeg 2018-07-25\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"stamps.txt:1: expected"):
        read_times(listing)
