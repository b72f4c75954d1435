"""`hazardwatch models eval --json`: the exact keys other tools read, through the edge's code path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo" / "red-patch.json"
KEYS = {"n_pos", "n_neg", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "threshold", "ms_per_image", "model"}

pytestmark = pytest.mark.quick


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    pos, neg = tmp_path / "pos", tmp_path / "neg" / "nested"
    pos.mkdir()
    neg.mkdir(parents=True)
    for k in range(3):
        img = np.full((240, 320, 3), 90, np.uint8)
        cv2.rectangle(img, (40 + 20 * k, 40), (200, 180), (0, 0, 255), -1)  # a red patch
        cv2.imwrite(str(pos / f"p{k}.png"), img)
    for k, ext in enumerate(("jpg", "jpeg", "png", "tif")):
        cv2.imwrite(str(neg / f"n{k}.{ext}"), np.full((240, 320, 3), 60 + 20 * k, np.uint8))
    (neg / "notes.txt").write_text("not an image")
    return pos, neg.parent


def test_eval_json_keys_and_counts(tmp_path):
    pos, neg = _folders(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "models", "eval", "fire", "--positives", str(pos),
         "--negatives", str(neg), "--model", str(DEMO), "--json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(res) == KEYS
    assert (res["n_pos"], res["n_neg"]) == (3, 4)
    assert (res["tp"], res["fn"], res["fp"], res["tn"]) == (3, 0, 0, 4)
    assert res["precision"] == res["recall"] == res["f1"] == 1.0
    assert res["threshold"] == 0.5
    assert res["model"] == "red-patch 1.0.0"


def test_eval_plot_writes_a_png_or_says_why(tmp_path):
    pos, neg = _folders(tmp_path)
    plot = tmp_path / "pr.png"
    out = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "models", "eval", "fire", "--positives", str(pos),
         "--negatives", str(neg), "--model", str(DEMO), "--json", "--plot", str(plot)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    assert plot.is_file() or "matplotlib is not installed" in out.stderr


def test_eval_does_not_import_torch():
    code = (
        "import sys; from hazardwatch.models import evaluate, cli; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_train_refuses_a_bad_exclusion_list_before_any_work(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "data").mkdir()
    bad = tmp_path / "excluded.txt"
    bad.write_text("frame.jpeg without a reason\n", encoding="utf-8")
    base = [sys.executable, "-m", "hazardwatch.cli", "models", "train"]
    args = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--exclude", str(bad)]
    run = subprocess.run([*base, "smoke", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and f"{bad}:1: expected" in run.stderr, run.stderr
    run = subprocess.run([*base, "waterlogging", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and "smoke only" in run.stderr, run.stderr
    boxes = tmp_path / "boxes.txt"
    boxes.write_text("frame.jpeg\t10 20 5 40\tplume\n", encoding="utf-8")
    run = subprocess.run(
        [*base, "smoke", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--boxes", str(boxes)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and f"--boxes: {boxes}:1: box '10 20 5 40' needs" in run.stderr, run.stderr
    shipped = tmp_path / "ref"  # a model folder train-reference would add its head to
    shipped.mkdir()
    (shipped / "ref-int8.json").write_text("{}", encoding="utf-8")
    reference = [*base[:-1], "train-reference", "smoke", "--data", str(tmp_path / "data"), "--out", str(shipped)]
    run = subprocess.run(
        [*reference, "--version", "9.9.9", "--boxes", str(boxes)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )  # fmt: skip
    assert run.returncode == 2 and f"--boxes: {boxes}:1: box" in run.stderr, run.stderr
    assert sorted(p.name for p in shipped.iterdir()) == ["ref-int8.json"]


def test_train_refuses_a_box_that_does_not_fit_its_frame_before_any_work(tmp_path):
    """A box past its frame's edge is only found against the data: the command names the frame and writes
    nothing, instead of a traceback after the split."""
    pytest.importorskip("torch")
    pytest.importorskip("scipy", reason="view grouping needs scipy (the [train] extra)")
    import cv2
    import numpy as np

    data = tmp_path / "smoke-hpwren"
    for sub in ("smoke", "unlabeled_hpwren", "annotations_voc"):
        (data / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(8):
        frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        cv2.imwrite(str(data / ("smoke" if k < 2 else "unlabeled_hpwren") / f"f{k}.jpeg"), frame)
    boxes = tmp_path / "boxes.txt"
    boxes.write_text("f5.jpeg\t300 10 330 40\tplume at the right edge\n", encoding="utf-8")
    out = tmp_path / "m"
    run = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "models", "train", "smoke", "--data", str(data), "--out", str(out),
         "--boxes", str(boxes), "--work", str(tmp_path / "w"), "--cache", str(tmp_path / "c")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "--boxes: " in run.stderr and "f5.jpeg: reviewed box" in run.stderr and "320x240 frame" in run.stderr
    assert "Traceback" not in run.stderr and not out.exists()
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("how", ["missing positives", "both modes", "neither mode"])
def test_eval_refuses_folders_that_do_not_exist_and_mixed_modes(tmp_path, how):
    pos, neg = _folders(tmp_path)
    args = {
        "missing positives": ["--positives", str(tmp_path / "nope"), "--negatives", str(neg)],
        "both modes": ["--positives", str(pos), "--negatives", str(neg), "--cameras", str(tmp_path)],
        "neither mode": [],
    }[how]
    out = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "models", "eval", "fire", *args, "--model", str(DEMO), "--json"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert ("no such folder" in out.stderr) if how == "missing positives" else ("--cameras ROOT" in out.stderr)


def test_eval_cameras_runs_any_model_and_names_a_bad_camera_folder(tmp_path):
    """--cameras with a model that has no reference: every camera runs cold, per camera figures still come."""
    pos, neg = _folders(tmp_path)
    root = tmp_path / "cams"
    (root / "cam-1").mkdir(parents=True)
    pos.rename(root / "cam-1" / "positives")
    (neg / "nested").rename(root / "cam-1" / "negatives")
    cli = [sys.executable, "-m", "hazardwatch.cli", "models", "eval", "fire", "--model", str(DEMO), "--json"]
    cli.append("--cameras")
    out = subprocess.run([*cli, str(root)], capture_output=True, text=True, check=True, cwd=ROOT)
    res = json.loads(out.stdout)
    assert set(res) >= KEYS and (res["n_pos"], res["n_neg"], res["tp"], res["fp"]) == (3, 4, 3, 0)
    assert res["per_camera"]["cam-1"]["reference_in_use"] is False and res["cold"]["recall"] == 1.0
    assert res["events"]["quiet_looks"] == 4 and res["events"]["cameras_alerted"] == 1
    (root / "cam two" / "positives").mkdir(parents=True)
    bad = subprocess.run([*cli, str(root)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "cam two" in bad.stderr


def test_eval_zoom_band_needs_cameras_a_model_that_zooms_and_a_real_band(tmp_path):
    pos, neg = _folders(tmp_path)
    root = tmp_path / "cams"
    (root / "cam-1").mkdir(parents=True)
    pos.rename(root / "cam-1" / "positives")
    cli = [sys.executable, "-m", "hazardwatch.cli", "models", "eval"]

    def refused(*args: str) -> str:
        run = subprocess.run([*cli, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert run.returncode == 2, run.stdout
        return run.stderr

    assert "only with --cameras" in refused("fire", "--model", str(DEMO), "--positives", str(root / "cam-1"),
                                            "--negatives", str(neg), "--zoom-band", "0.3", "0.8")
    no_zoom = refused("fire", "--model", str(DEMO), "--cameras", str(root), "--zoom-band", "0.3", "0.8")
    assert "no reference.zoom" in no_zoom
    assert "band must be" in refused("smoke", "--cameras", str(root), "--zoom-band", "0.5", "0.55")


def _stamped(folder: Path, when: str, red: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = np.full((240, 320, 3), 90, np.uint8)
    if red:
        cv2.rectangle(img, (60, 40), (200, 180), (0, 0, 255), -1)
    cv2.imwrite(str(folder / f"{when}_cam.png"), img)


def test_eval_cameras_replays_a_camera_named_by_time_along_its_own_timeline(tmp_path):
    """Frames named with their times are replayed in time order, each looked at every 30 s until the next:
    a fire's minutes to alert are measured from its first frame, quiet looks between fires count as quiet."""
    root = tmp_path / "cams"
    cam = root / "cam-1"
    for minute in range(0, 10):  # quiet from 12:00, a frame a minute
        _stamped(cam / "negatives", f"20180725-12{minute:02d}00", red=False)
    for minute in range(10, 13):  # fire A from 12:10: flagged at once
        _stamped(cam / "positives", f"20180725-12{minute:02d}00", red=True)
    for minute in range(13, 20):
        _stamped(cam / "negatives", f"20180725-12{minute:02d}00", red=False)
    _stamped(cam / "positives", "20180725-150000", red=False)  # fire B: its first minute too faint to flag
    for minute in range(1, 4):
        _stamped(cam / "positives", f"20180725-15{minute:02d}00", red=True)
    cli = [sys.executable, "-m", "hazardwatch.cli", "models", "eval", "fire", "--model", str(DEMO), "--json"]
    out = subprocess.run([*cli, "--cameras", str(root)], capture_output=True, text=True, check=True, cwd=ROOT)
    events = json.loads(out.stdout)["events"]
    first, second = events["fires"]
    assert (first["start"], first["frames"], first["alerted"]) == ("2018-07-25T12:10:00", 3, True)
    # two looks a frame, 3 of 5 votes: the third look, a minute after the first frame
    assert (first["looks_to_alert"], first["minutes_to_alert"]) == (3, 1.0)
    assert (second["start"], second["looks_to_alert"], second["minutes_to_alert"]) == ("2018-07-25T15:00:00", 5, 2.0)
    assert events["fires_alerted"] == 2 and events["median_minutes_to_alert"] == 1.5
    assert second["minutes_to_an_open_alert"] == 2.0 and events["fires_in_an_open_alert"] == 2
    assert events["quiet_looks_in_a_false_alert"] == 0
    # quiet looks: two a frame, but the looks up to end_after_s (120 s) after fire A's last frame are the
    # fire's (12:13:00-12:14:00), and the frame before fire B stands for at most 4 looks (the gap is hours)
    assert events["false_alerts"] == 0 and events["quiet_looks"] == 2 * 10 + 1 + 2 * 4 + 4
    # one frame without a time: the camera is replayed in name order, as before
    _stamped(cam / "negatives", "noon", red=False)
    out = subprocess.run([*cli, "--cameras", str(root)], capture_output=True, text=True, check=True, cwd=ROOT)
    res = json.loads(out.stdout)
    assert res["events"]["fires"] == [] and res["per_camera"]["cam-1"]["timeline"] is False


def test_a_fire_that_starts_while_a_false_alert_is_open_is_shown_in_it_not_alerted_anew(tmp_path):
    """A camera alerting on something else when its fire starts: no alert of the fire's own (the vote is per
    camera and zone), but the open alert carries the fire's looks to the duty officer from its first frame."""
    root = tmp_path / "cams"
    cam = root / "cam-1"
    for minute in range(0, 4):  # a red thing that is no fire: a false alert opens at 12:01
        _stamped(cam / "negatives", f"20180725-12{minute:02d}00", red=True)
    for minute in range(4, 7):
        _stamped(cam / "positives", f"20180725-12{minute:02d}00", red=True)
    cli = [sys.executable, "-m", "hazardwatch.cli", "models", "eval", "fire", "--model", str(DEMO), "--json"]
    out = subprocess.run([*cli, "--cameras", str(root)], capture_output=True, text=True, check=True, cwd=ROOT)
    events = json.loads(out.stdout)["events"]
    (fire,) = events["fires"]
    assert fire["alerted"] is False and fire["minutes_to_an_open_alert"] == 0.0
    assert events["false_alerts"] == 1 and events["fires_in_an_open_alert"] == 1
    assert events["quiet_looks_in_a_false_alert"] == 6  # 12:01:00 to 12:03:30


def test_timeline_figures_tell_a_fire_alerted_at_once_from_none_alerted(tmp_path):
    """`train-reference`'s day figures: the median minutes to alert is -1 only when no fire alerted."""
    from hazardwatch.edge.detect.onnx_detector import OnnxDetector
    from hazardwatch.models.train_reference import timeline_figures

    root = tmp_path / "days"
    cam = root / "cam-1"
    for minute in range(0, 3):
        _stamped(cam / "negatives", f"20180725-12{minute:02d}00", red=False)
    for minute in range(3, 6):  # a fire the model never flags
        _stamped(cam / "positives", f"20180725-12{minute:02d}00", red=False)
    missed = timeline_figures(OnnxDetector(DEMO, threads=1), root)
    assert missed["reference_timeline_fires"] == 1 and missed["reference_timeline_fires_alerted"] == 0
    assert missed["reference_timeline_median_minutes_to_alert"] == -1
    for path in (cam / "positives").iterdir():
        path.unlink()
    for minute in range(3, 6):
        _stamped(cam / "positives", f"20180725-12{minute:02d}00", red=True)
    # the minute before the first boxed frame already shows it (two looks: short of the vote's three), so the
    # fire alerts at its first frame: 0 minutes, not "none alerted"
    _stamped(cam / "negatives", "20180725-120200", red=True)
    found = timeline_figures(OnnxDetector(DEMO, threads=1), root)
    assert found["reference_timeline_fires_alerted"] == 1
    assert found["reference_timeline_median_minutes_to_alert"] == 0.0
    assert found["reference_timeline_max_minutes_to_alert"] == 0.0
    assert found["reference_timeline_quiet_looks"] == 6
    assert found["reference_timeline_false_alerts_per_1000_quiet_looks"] == 0
