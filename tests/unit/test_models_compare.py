"""`hazardwatch models compare`: a candidate beside the running model on an export-dataset folder, as the
edge runs both; the frames whose decision changes are listed, and bad input is refused by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hazardwatch.models.evaluate import DEFAULT_MODELS, MODELS_DIR

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

RUNNING = MODELS_DIR / DEFAULT_MODELS["smoke"]


def labelled(root: Path, data: Path, n: int = 6) -> Path:
    """An export-dataset layout: annotated plumes as positives, unlabelled HPWREN frames as negatives."""
    pos, neg = root / "smoke" / "smoke", root / "smoke" / "negatives"
    pos.mkdir(parents=True)
    neg.mkdir(parents=True)
    for src in sorted((data / "smoke-hpwren" / "smoke").glob("*.jpeg"))[:n]:
        shutil.copy(src, pos / src.name)
    for src in sorted((data / "smoke-hpwren" / "unlabeled_hpwren").glob("*.jpeg"))[:n]:
        shutil.copy(src, neg / src.name)
    return root


def candidate(folder: Path, threshold: float) -> Path:
    """The shipped smoke model at another operating threshold, as version 9.9.9."""
    folder.mkdir()
    doc = json.loads(RUNNING.read_text())
    shutil.copy(RUNNING.with_name(doc["file"]), folder / doc["file"])
    doc["version"], doc["threshold"] = "9.9.9", threshold
    if doc.get("reference"):
        doc["reference"]["threshold"] = threshold
    (folder / RUNNING.name).write_text(json.dumps(doc))
    return folder / RUNNING.name


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hazardwatch.cli", "models", "compare", "smoke", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_candidate_beside_running_on_labelled_frames(tmp_path: Path, shared_data: Path) -> None:
    root = labelled(tmp_path / "labelled", shared_data)
    cand = candidate(tmp_path / "cand", threshold=0.5)  # far below the shipped 0.99: more alarms
    run = compare("--candidate", str(cand), "--labelled", str(root), "--json")
    assert run.returncode == 0, run.stderr
    res = json.loads(run.stdout)
    r, c, ch = res["running"], res["candidate"], res["changes"]
    assert r["model"].endswith(json.loads(RUNNING.read_text())["version"]) and c["model"].endswith("9.9.9")
    assert (r["n_pos"], r["n_neg"], c["n_pos"], c["n_neg"]) == (6, 6, 6, 6)
    assert c["threshold"] == 0.5 < r["threshold"]
    # a lower threshold only adds alarms: nothing is missed that was caught, no false alarm goes away
    assert ch["missed"] == [] and ch["false_alarms_gone"] == []
    assert c["tp"] == r["tp"] + len(ch["caught"]) and c["fp"] == r["fp"] + len(ch["new_false_alarms"])
    assert res["delta"]["recall"] == pytest.approx(c["recall"] - r["recall"], abs=1e-3)
    assert all(Path(p).parent.name == "smoke" for p in ch["caught"])
    assert all(Path(p).parent.name == "negatives" for p in ch["new_false_alarms"])
    assert c["tp"] + c["fp"] > r["tp"] + r["fp"]  # 0.5 against 0.99 does change decisions on these frames

    text = compare("--candidate", str(cand), "--labelled", str(root))
    assert text.returncode == 0
    assert "running" in text.stdout and "candidate" in text.stdout and "new_false_alarms" in text.stdout


def test_bad_input_is_refused_by_name(tmp_path: Path) -> None:
    run = compare("--candidate", str(tmp_path / "nope.json"), "--labelled", str(tmp_path))
    assert run.returncode == 2 and "nope.json" in run.stderr
    run = compare("--candidate", str(RUNNING), "--labelled", str(tmp_path / "empty"))
    assert run.returncode == 2 and str(tmp_path / "empty" / "smoke" / "smoke") in run.stderr
    run = compare("--candidate", str(RUNNING))
    assert run.returncode == 2 and "--labelled" in run.stderr
