"""The edge end to end on real parts: a GStreamer RTSP server streaming real video, a private
Mosquitto, the `hazardwatch edge` process, and a separate MQTT subscriber."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path

import cv2
import pytest

from hazardwatch.harness.edge_proc import EdgeProcess, MqttWatcher, wait_until, write_edge_config
from hazardwatch.harness.media import prepare_clip
from hazardwatch.harness.toy_models import paint_patch, red_patch_manifest

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")


def alert_scene(folder: Path, shared_data: Path, patched: int = 3, clean: int = 5) -> Path:
    """Real HPWREN frames; the first `patched` of each cycle carry a red patch (the 'hazard')."""
    folder.mkdir(parents=True)
    frames = sorted((shared_data / "smoke-hpwren/unlabeled_hpwren").glob("*.jp*g"))[: patched + clean]
    for k, src in enumerate(frames):
        img = cv2.imread(str(src))
        if k < patched:
            img = paint_patch(img, (0.45, 0.4, 0.6, 0.6))
        cv2.imwrite(str(folder / f"{k:03d}.jpg"), img)
    return folder


def alerts_of(watcher: MqttWatcher) -> list[dict]:
    return [m.payload for m in watcher.of_kind("alert")]


@pytest.mark.rtsp
@pytest.mark.data
def test_rtsp_fire_video_to_alert_on_mqtt(tmp_path, manifest, mosquitto, rtsp_server_factory, shared_data, media_cache):
    clip = prepare_clip(shared_data / "media-furg-fire/fire/house6.mp4", media_cache, start=15, duration=10)
    road = prepare_clip(shared_data / "media-intel-road/traffic_road/car-detection.mp4", media_cache, duration=10)
    server = rtsp_server_factory({"/fire": clip, "/road": road})
    cams = [
        {
            "id": "cam-fire",
            "name": "House",
            "source": server.url("/fire"),
            "hazards": {"fire": {}},
            "location": {"lat": 22.5, "lon": 114.0},
            "bearing_deg": 90,
            "fov_deg": 60,
        },
        {"id": "cam-road", "source": server.url("/road"), "mode": "persistent", "hazards": {"fire": {}}},
    ]
    config = write_edge_config(tmp_path / "edge.yaml", broker_port=mosquitto.port, cameras=cams, manifest=manifest)
    watcher = MqttWatcher(mosquitto.port).start()
    with EdgeProcess(config, tmp_path / "edge.log") as edge:
        new = watcher.wait_for(lambda w: [a for a in alerts_of(w) if a["state"] == "new"], 60, "a new fire alert")[0]
        assert new["camera_id"] == "cam-fire" and new["hazard"] == "fire" and new["edge_id"] == "edge-test"
        assert new["camera_name"] == "House" and new["lat"] == 22.5 and new["bearing_deg"] == 90
        assert new["model_name"] == "red-patch" and new["model_version"] == "1.0.0"
        assert new["score"] >= 0.5 and new["boxes"] and new["first_frame_at"] <= new["last_frame_at"]
        jpeg = base64.b64decode(new["snapshot_jpeg_b64"])
        img = cv2.imdecode(__import__("numpy").frombuffer(jpeg, "uint8"), cv2.IMREAD_COLOR)
        assert img.shape[:2] == (240, 426)
        # The road never burns, and the persistent road camera is watched too.
        assert all(a["camera_id"] == "cam-fire" for a in alerts_of(watcher))
        road_cam = wait_until(lambda: (c := edge.camera("cam-road"))["frames"] >= 3 and c, 30, "road frames")
        assert road_cam["state"] == "online" and road_cam["last_frame_age_s"] < 5
        statuses = {m.topic: m for m in watcher.messages if m.payload.get("kind") == "camera_status"}
        assert statuses["hazardwatch/v1/edge-test/cameras/cam-fire/status"].payload["state"] == "online"
        avail = [m for m in watcher.messages if m.topic.endswith("/availability")]
        assert avail[-1].payload["state"] == "online"
        watcher.wait_for(lambda w: w.of_kind("heartbeat"), 10, "a heartbeat")
        health = edge.get_json("/healthz")
        assert health["status"] == "ok" and health["mqtt_connected"]
        metrics = edge.get_text("/metrics")
        assert 'hazardwatch_edge_frames_total{camera="cam-fire"}' in metrics
        assert 'hazardwatch_edge_alerts_total{hazard="fire",state="new"}' in metrics
        assert "hazardwatch_edge_outbox_depth 0.0" in metrics
        snap = __import__("urllib.request").request.urlopen(edge.url + "/api/cameras/cam-road/snapshot.jpg").read()
        assert snap[:2] == b"\xff\xd8"
    # A clean stop says goodbye on the availability topic.
    watcher.wait_for(
        lambda w: [m for m in w.messages if m.topic.endswith("/availability")][-1].payload["state"] == "offline",
        10,
        "availability offline",
    )
    watcher.stop()


@pytest.mark.rtsp
@pytest.mark.data
def test_rtsp_server_killed_and_restarted(tmp_path, manifest, mosquitto, rtsp_server_factory, road_clip):
    flaky = rtsp_server_factory({"/a": road_clip})
    steady = rtsp_server_factory({"/b": road_clip})
    cams = [
        {"id": "cam-flaky", "source": flaky.url("/a"), "hazards": {"fire": {}}},
        {"id": "cam-steady", "source": steady.url("/b"), "hazards": {"fire": {}}},
    ]
    config = write_edge_config(tmp_path / "edge.yaml", broker_port=mosquitto.port, cameras=cams, manifest=manifest)
    watcher = MqttWatcher(mosquitto.port).start()
    topic = "hazardwatch/v1/edge-test/cameras/cam-flaky/status"

    def flaky_state(w: MqttWatcher) -> str | None:
        states = [m.payload["state"] for m in w.messages if m.topic == topic]
        return states[-1] if states else None

    with EdgeProcess(config, tmp_path / "edge.log") as edge:
        watcher.wait_for(lambda w: flaky_state(w) == "online", 30, "flaky camera online")
        flaky.kill()
        killed_at = time.time()
        watcher.wait_for(lambda w: flaky_state(w) == "offline", 20, "flaky camera offline")
        offline_after = time.time() - killed_at
        steady_before = edge.camera("cam-steady")["frames"]
        time.sleep(3)
        steady_after = edge.camera("cam-steady")["frames"]
        assert steady_after >= steady_before + 2, "the steady camera stalled while the other one was down"
        cam = edge.camera("cam-flaky")
        assert cam["state"] == "offline" and cam["reason"]
        flaky.restart()
        watcher.wait_for(lambda w: flaky_state(w) == "online", 30, "flaky camera back online")
    assert offline_after < 4 + 2 + 3, f"offline status took {offline_after:.1f} s"
    watcher.stop()


@pytest.mark.data
def test_broker_outage_loses_and_reorders_nothing(tmp_path, manifest, shared_data):
    from hazardwatch.harness.mosquitto import MosquittoBroker

    scene = alert_scene(tmp_path / "scene", shared_data)
    cams = [{"id": "cam-scene", "source": str(scene), "hazards": {"fire": {}}}]
    confirm = {"window": 2, "min_votes": 2, "threshold": 0.5, "end_after_s": 1.2}
    with MosquittoBroker(workdir=tmp_path / "mq", autosave_interval=1) as broker:
        config = write_edge_config(
            tmp_path / "edge.yaml", broker_port=broker.port, cameras=cams, manifest=manifest, confirm=confirm
        )
        watcher = MqttWatcher(broker.port, client_id="outage-watcher").start()
        time.sleep(1.5)  # the watcher's persistent session reaches the broker's autosave
        with EdgeProcess(config, tmp_path / "edge.log") as edge:
            watcher.wait_for(lambda w: len(alerts_of(w)) >= 2, 30, "alerts before the outage")
            broker.kill()
            down_at = time.time()
            wait_until(lambda: edge.get_json("/healthz")["outbox_depth"] >= 4, 30, "alerts queued in the outbox")
            queued = edge.get_json("/healthz")["outbox_depth"]
            broker.restart()
            wait_until(lambda: edge.get_json("/healthz")["outbox_depth"] == 0, 30, "outbox drained")
            outage_s = time.time() - down_at
            assert edge.stop() == 0
        produced = (
            sqlite3.connect(tmp_path / "outbox.db")
            .execute("SELECT value FROM meta WHERE key = 'next_alert_seq'")
            .fetchone()[0]
        )
        watcher.wait_for(lambda w: len(alerts_of(w)) >= produced, 10, f"all {produced} alerts")
        time.sleep(0.5)
        alerts = alerts_of(watcher)
        seqs = [a["seq"] for a in alerts]
        assert list(dict.fromkeys(seqs)) == list(range(produced)), f"lost or reordered: {seqs}"
        # QoS 1 is at least once: a broker killed before it saved a PUBACK sends that alert again after its
        # restart (seen: [0, 1, 1, 2, 3, 4]); central recognises the repeat by (edge_id, seq). A repeat must
        # be the same alert, never another one under a used seq.
        first = {}
        for a in alerts:
            assert first.setdefault(a["seq"], a) == a, f"seq {a['seq']} sent with two contents"
        print(f"outage {outage_s:.1f} s, {queued} messages queued, {produced} alerts delivered once in order")
        watcher.stop()


@pytest.mark.data
def test_edge_killed_with_alerts_in_outbox_sends_them_after_restart(tmp_path, manifest, shared_data):
    from hazardwatch.harness.mosquitto import MosquittoBroker
    from hazardwatch.procs import free_port

    scene = alert_scene(tmp_path / "scene", shared_data)
    port = free_port()
    cams = [{"id": "cam-scene", "source": str(scene), "hazards": {"fire": {}}}]
    confirm = {"window": 2, "min_votes": 2, "threshold": 0.5, "end_after_s": 1.2}
    config = write_edge_config(
        tmp_path / "edge.yaml", broker_port=port, cameras=cams, manifest=manifest, confirm=confirm
    )
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        wait_until(lambda: edge.get_json("/healthz")["outbox_depth"] >= 4, 40, "alerts waiting for the broker")
    finally:
        edge.kill()
    db = sqlite3.connect(tmp_path / "outbox.db")
    stored = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox WHERE kind = 'alert' ORDER BY id")]
    db.close()
    assert len(stored) >= 2 and [a["seq"] for a in stored] == list(range(len(stored)))

    # The edge restarts (scene now without hazards), then the broker comes up.
    for f in scene.glob("00[0-2].jpg"):
        f.unlink()
    with MosquittoBroker(port=port, workdir=tmp_path / "mq") as broker:
        watcher = MqttWatcher(broker.port).start()
        with EdgeProcess(config, tmp_path / "edge2.log"):
            watcher.wait_for(lambda w: len(alerts_of(w)) >= len(stored), 30, "the stored alerts")
            time.sleep(2)
        got = alerts_of(watcher)
        sent = {(a["alert_id"], a["seq"], a["state"]) for a in stored}
        assert [(a["alert_id"], a["seq"], a["state"]) for a in got[: len(stored)]] == [
            (a["alert_id"], a["seq"], a["state"]) for a in stored
        ]
        assert len({(a["alert_id"], a["seq"]) for a in got}) == len(got), "duplicates"
        assert sent <= {(a["alert_id"], a["seq"], a["state"]) for a in got}
        watcher.stop()


def test_risk_command_shortens_interval(tmp_path, manifest, mosquitto, shared_data):
    import paho.mqtt.publish as publish

    scene = alert_scene(tmp_path / "scene", shared_data, patched=0, clean=3)
    cams = [
        {"id": "cam-a", "source": str(scene), "hazards": {"fire": {"interval_s": 20}}},
        {"id": "cam-b", "source": str(scene), "hazards": {"fire": {"interval_s": 20}}},
    ]
    config = write_edge_config(tmp_path / "edge.yaml", broker_port=mosquitto.port, cameras=cams, manifest=manifest)
    with EdgeProcess(config, tmp_path / "edge.log") as edge:
        wait_until(lambda: edge.get_json("/healthz")["mqtt_connected"], 20, "edge connected")
        command = {
            "schema_version": 1,
            "kind": "set_risk",
            "edge_id": "edge-test",
            "sent_at": time.time(),
            "command_id": "cmd-1",
            "hazard": "fire",
            "level": "high",
            "cameras": ["cam-a"],
            "until": time.time() + 600,
            "reason": "red flag warning",
        }
        publish.single("hazardwatch/v1/edge-test/commands", json.dumps(command), qos=1, port=mosquitto.port)
        publish.single("hazardwatch/v1/edge-test/commands", b"{not json", qos=1, port=mosquitto.port)
        cam = wait_until(lambda: (c := edge.camera("cam-a"))["hazards"]["fire"]["risk"] == "high" and c, 10, "risk")
        assert cam["hazards"]["fire"]["interval_s"] == 5.0
        assert edge.camera("cam-b")["hazards"]["fire"] == {"interval_s": 20.0, "risk": "normal"}
        metrics = edge.get_text("/metrics")
        assert 'hazardwatch_edge_patrol_interval_seconds{camera="cam-a",hazard="fire"} 5.0' in metrics
        wait_until(
            lambda: 'hazardwatch_edge_commands_total{result="invalid"} 1.0' in edge.get_text("/metrics"),
            10,
            "the malformed command counted",
        )
        # Four looks at cam-a within 16 s at the raised rate, one at cam-b.
        frames_a = edge.camera("cam-a")["frames"]
        time.sleep(11)
        assert edge.camera("cam-a")["frames"] >= frames_a + 2
        assert edge.camera("cam-b")["frames"] == 1


def test_bad_config_and_wrong_model_fail_clearly(tmp_path, manifest):
    import subprocess
    import sys

    cams = [{"id": "c1", "source": str(tmp_path), "hazards": {"fire": {}}}]
    config = write_edge_config(tmp_path / "edge.yaml", broker_port=None, cameras=cams, manifest=manifest)
    text = config.read_text().replace("burst_interval_s: 0.3", "burst_interval_s: -1")
    config.write_text(text)
    line = text.splitlines().index("  burst_interval_s: -1") + 1
    run = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "edge", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert f"{config}:{line} patrol.burst_interval_s: Input should be greater than 0" in run.stderr

    config.write_text(text.replace("burst_interval_s: -1", "burst_interval_s: 0.3"))
    onnx_file = manifest.parent / "red-patch.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10])
    run = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "edge", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    line = next(i for i, t in enumerate(config.read_text().splitlines(), 1) if t.lstrip("- ").startswith("manifest:"))
    assert f"{config}:{line} models.0.manifest: " in run.stderr and "red-patch.onnx: sha256" in run.stderr
    assert "Traceback" not in run.stderr
