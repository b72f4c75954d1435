"""Registry and rollout end to end on real parts: a private Mosquitto, a real `hazardwatch central`
(SQLite), two real `hazardwatch edge` processes. A new model goes to the canary first, then to the
other edge; a model that does not load and a file corrupted after registration are both refused by
the canary with the old model still detecting, and the other edge is never touched."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from hazardwatch.harness.central_proc import ADMIN, OPERATOR, VIEWER, CentralProcess, write_central_config
from hazardwatch.harness.edge_proc import EdgeProcess, MqttWatcher, wait_until, write_edge_config
from hazardwatch.harness.toy_models import paint_patch, red_patch_graph, write_model

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

EDGE_TOKENS = {"edge-a": "edge-a-token-0123456789", "edge-b": "edge-b-token-0123456789"}


def central_auth() -> dict:
    tokens = [
        {"name": "amy", "role": "operator", "token": {"value": OPERATOR}},
        {"name": "wall", "role": "viewer", "token": {"value": VIEWER}},
        {"name": "root", "role": "admin", "token": {"value": ADMIN}},
    ]
    tokens += [{"name": e, "role": "edge", "token": {"value": t}} for e, t in EDGE_TOKENS.items()]
    return {"tokens": tokens}


def scene(folder: Path, patched: int = 3, clean: int = 3, still: bool = False) -> Path:
    """Synthetic 320x240 frames; the first `patched` of each cycle carry a red patch (the 'fire').
    `still`: one background for every frame (a static camera: near-identical frames)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    background = rng.integers(60, 140, (240, 320, 3), dtype=np.uint8)
    for k in range(patched + clean):
        img = background.copy() if still else rng.integers(60, 140, (240, 320, 3), dtype=np.uint8)
        if k < patched:
            img = paint_patch(img, (0.4, 0.4, 0.6, 0.6))
        cv2.imwrite(str(folder / f"{k:03d}.jpg"), img)
    return folder


def multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = b""
    for name, (filename, data, ctype) in fields.items():
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def register(central: CentralProcess, manifest: Path, token: str = ADMIN) -> tuple[int, dict]:
    doc = json.loads(manifest.read_text())
    body, ctype = multipart(
        {
            "manifest": ("manifest.json", manifest.read_bytes(), "application/json"),
            "file": (doc["file"], (manifest.parent / doc["file"]).read_bytes(), "application/octet-stream"),
        }
    )
    req = urllib.request.Request(central.url + "/api/v1/models", data=body, method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def model_version(tmp: Path, version: str, gain: float = 12.0) -> Path:
    return write_model(red_patch_graph(gain=gain), tmp / f"model-{version}", name="red-patch", version=version)


def start_edge(
    tmp_path: Path, edge_id: str, port: int, central: CentralProcess, manifest: Path, frames: Path
) -> EdgeProcess:
    cfg = write_edge_config(
        tmp_path / edge_id / "edge.yaml",
        broker_port=port,
        edge_id=edge_id,
        cameras=[{"id": "cam-1", "source": str(frames), "hazards": {"fire": {}}}],
        manifest=manifest,
        central={"url": central.url, "token": {"value": EDGE_TOKENS[edge_id]}, "timeout_s": 10},
        rollout={"probation_batches": 2},
    )
    return EdgeProcess(cfg, tmp_path / edge_id / "edge.log").start()


def rollout(central: CentralProcess, rid: int) -> dict:
    return central.get(f"/api/v1/rollouts/{rid}", token=VIEWER)


def healthz_model(edge: EdgeProcess) -> str:
    return edge.get_json("/healthz")["models"]["fire"]


def test_canary_then_wave_and_bad_models_are_refused_with_the_old_one_running(tmp_path, mosquitto):
    (tmp_path / "edge-a").mkdir()
    (tmp_path / "edge-b").mkdir()
    cfg = write_central_config(
        tmp_path / "central.yaml",
        broker_port=mosquitto.port,
        database_url=f"sqlite:///{tmp_path / 'central.db'}",
        auth=central_auth(),
    )
    v1 = model_version(tmp_path, "1.0.0")
    frames = scene(tmp_path / "frames")
    watcher = MqttWatcher(mosquitto.port).start()
    central = CentralProcess(cfg, tmp_path / "central.log").start()
    edges: dict[str, EdgeProcess] = {}
    try:
        edges = {e: start_edge(tmp_path, e, mosquitto.port, central, v1, frames) for e in EDGE_TOKENS}

        # -- registry: checks and roles --
        v2 = model_version(tmp_path, "2.0.0", gain=10.0)
        assert register(central, v2, token=OPERATOR)[0] == 403
        status, model = register(central, v2)
        assert status == 201 and model["version"] == "2.0.0" and model["registered_by"] == "root", model
        assert register(central, v2)[0] == 409  # versions are immutable
        listed = central.get("/api/v1/models", token=VIEWER)["items"]
        assert [(m["name"], m["version"]) for m in listed] == [("red-patch", "2.0.0")]
        # an edge token downloads models but reads nothing else
        assert central.request("GET", "/api/v1/incidents", token=EDGE_TOKENS["edge-a"])[0] == 403
        assert central.request("GET", "/api/v1/models/red-patch/2.0.0/manifest", token=EDGE_TOKENS["edge-a"])[0] == 200

        # -- rollout: canary first, then the rest --
        status, ro = central.request(
            "POST",
            "/api/v1/rollouts",
            {"model": "red-patch", "version": "2.0.0", "edges": ["edge-a", "edge-b"]},
            token=ADMIN,
        )
        assert status == 201 and ro["canary"] == "edge-a", ro
        done = wait_until(lambda: (r := rollout(central, ro["id"]))["state"] == "done" and r, 60, "rollout done")
        by_edge = {e["edge_id"]: e for e in done["edges"]}
        assert by_edge["edge-a"]["state"] == by_edge["edge-b"]["state"] == "active"
        assert by_edge["edge-a"]["running_version"] == "2.0.0"
        # the wave was only sent after the canary reported the new version healthy
        assert by_edge["edge-b"]["sent_at"] >= by_edge["edge-a"]["updated_at"]
        for edge in edges.values():
            assert healthz_model(edge) == "red-patch@2.0.0"
        # the edge reports the running version (heartbeat) and still detects, with the new model
        watcher.wait_for(
            lambda w: [
                m
                for m in w.of_kind("heartbeat")
                if m.payload["edge_id"] == "edge-b" and m.payload["models"].get("red-patch") == "2.0.0"
            ],
            20,
            "heartbeat with 2.0.0",
        )
        watcher.wait_for(
            lambda w: [m for m in w.of_kind("alert") if m.payload["model_version"] == "2.0.0"], 60, "alert by 2.0.0"
        )
        edges_view = central.get("/api/v1/models", token=VIEWER)["edges"]
        assert {(e["edge_id"], e["model_version"]) for e in edges_view} >= {("edge-a", "2.0.0"), ("edge-b", "2.0.0")}

        # -- a model file ONNX Runtime cannot load: the canary refuses it, edge-b is never asked --
        v3 = model_version(tmp_path, "3.0.0")
        (v3.parent / "red-patch.onnx").write_bytes(b"this is not an onnx graph" * 10)
        doc = json.loads(v3.read_text())
        doc["sha256"] = __import__("hashlib").sha256((v3.parent / "red-patch.onnx").read_bytes()).hexdigest()
        v3.write_text(json.dumps(doc))
        assert register(central, v3)[0] == 201
        status, ro3 = central.request(
            "POST",
            "/api/v1/rollouts",
            {"model": "red-patch", "version": "3.0.0", "edges": ["edge-a", "edge-b"]},
            token=ADMIN,
        )
        assert status == 201
        failed = wait_until(
            lambda: (r := rollout(central, ro3["id"]))["state"] == "failed" and r, 60, "rollout 3 fails"
        )
        by_edge = {e["edge_id"]: e for e in failed["edges"]}
        assert by_edge["edge-a"]["state"] == "failed" and "load" in by_edge["edge-a"]["detail"], by_edge
        assert by_edge["edge-a"]["running_version"] == "2.0.0"
        assert by_edge["edge-b"]["state"] == "waiting" and by_edge["edge-b"]["sends"] == 0
        assert healthz_model(edges["edge-a"]) == "red-patch@2.0.0"

        # -- a file corrupted after registration (storage or transit): sha256 mismatch on the edge --
        v4 = model_version(tmp_path, "4.0.0", gain=11.0)
        assert register(central, v4)[0] == 201
        with sqlite3.connect(tmp_path / "central.db") as db:
            db.execute("UPDATE model_versions SET data = ? WHERE version = '4.0.0'", (b"\x00corrupt" * 64,))
        status, ro4 = central.request(
            "POST", "/api/v1/rollouts", {"model": "red-patch", "version": "4.0.0", "edges": ["edge-a"]}, token=ADMIN
        )
        failed = wait_until(
            lambda: (r := rollout(central, ro4["id"]))["state"] == "failed" and r, 60, "rollout 4 fails"
        )
        assert "sha256" in failed["edges"][0]["detail"], failed
        assert healthz_model(edges["edge-a"]) == "red-patch@2.0.0"
        seen = len(watcher.of_kind("alert"))
        watcher.wait_for(
            lambda w: [
                m
                for m in w.of_kind("alert")[seen:]
                if m.payload["edge_id"] == "edge-a" and m.payload["model_version"] == "2.0.0"
            ],
            60,
            "edge-a still alerting with 2.0.0",
        )

        # -- the active choice survives a restart --
        edges["edge-a"].stop()
        edges["edge-a"] = EdgeProcess(edges["edge-a"].config, edges["edge-a"].log_path).start()
        assert healthz_model(edges["edge-a"]) == "red-patch@2.0.0"
    finally:
        for edge in edges.values():
            edge.__exit__(None, None, None)
        central.stop()
        watcher.stop()
