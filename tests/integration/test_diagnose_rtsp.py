"""Camera diagnosis end to end: a real road video over RTSP to a running `hazardwatch edge`, covered,
blurred and frozen mid-stream (the RTSP server is restarted on the same port with another clip), and
the retained camera status on a private Mosquitto follows: degraded with the reason, then online."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from hazardwatch.harness.edge_proc import EdgeProcess, MqttWatcher, wait_until, write_edge_config
from hazardwatch.harness.media import frames_to_clip, run_ffmpeg, x264_args
from hazardwatch.harness.toy_models import red_patch_manifest

pytestmark = [pytest.mark.mqtt, pytest.mark.rtsp, pytest.mark.data, pytest.mark.slow]

TOPIC = "hazardwatch/v1/edge-test/cameras/cam-road/status"


def variant(src: Path, cache: Path, name: str, vf: str) -> Path:
    """The same clip through an ffmpeg filter (a cover, a blur), encoded like the original."""
    out = cache / f"{src.stem}-{name}.mp4"
    if not out.exists():
        run_ffmpeg(["-i", str(src), "-vf", vf, *x264_args(10, 10)], out)
    return out


def frozen_clip(src: Path, cache: Path) -> Path:
    """One frame of the clip held for ten seconds: a stream that runs but shows a stuck picture."""
    out = cache / f"{src.stem}-frozen.mp4"
    if not out.exists():
        with av.open(str(src)) as c:
            frame = next(f for k, f in enumerate(c.decode(video=0)) if k == 30).to_ndarray(format="bgr24")
        frames_to_clip([frame], out, hold=100)
    return out


def statuses(w: MqttWatcher) -> list[dict]:
    return [m.payload for m in w.messages if m.topic == TOPIC]


def test_cover_blur_and_freeze_mid_stream_change_the_status_and_back(
    tmp_path, mosquitto, rtsp_server_factory, road_clip, media_cache
):
    clips = {
        "covered": variant(road_clip, media_cache, "covered", "drawbox=x=0:y=0:w=iw*0.6:h=ih:color=0x202020@1:t=fill"),
        "blurred": variant(road_clip, media_cache, "blurred", "boxblur=8:2"),
        "frozen": frozen_clip(road_clip, media_cache),
    }
    server = rtsp_server_factory({"/road": road_clip})
    port = server.port
    manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
    cams = [{"id": "cam-road", "source": server.url("/road"), "mode": "persistent", "hazards": {"fire": {}}}]
    config = write_edge_config(
        tmp_path / "edge.yaml",
        broker_port=mosquitto.port,
        cameras=cams,
        manifest=manifest,
        diagnose={"enter_looks": 2, "leave_looks": 2, "warmup_looks": 3},
    )
    watcher = MqttWatcher(mosquitto.port).start()

    def serve(path: Path) -> None:
        nonlocal server
        server.stop()
        server = rtsp_server_factory({"/road": path}, port=port)

    def last(w: MqttWatcher) -> dict | None:
        got = statuses(w)
        return got[-1] if got else None

    def clean_online(w: MqttWatcher) -> bool:
        s = last(w)
        return bool(s and s["state"] == "online" and not set(s.get("diagnoses", {})) - {"night_ir", "fog"})

    with EdgeProcess(config, tmp_path / "edge.log") as edge:
        watcher.wait_for(clean_online, 30, "camera online")
        # Let the reference settle over a few healthy looks (key frames come once a second).
        wait_until(lambda: edge.camera("cam-road")["frames"] >= 6, 30, "healthy looks")
        assert edge.camera("cam-road")["state"] == "online"
        for name, reason in (("covered", "covered ("), ("blurred", "blurred ("), ("frozen", "frozen")):
            serve(clips[name])
            got = watcher.wait_for(
                lambda w, name=name: (s := last(w)) and s["state"] == "degraded" and name in s.get("diagnoses", {}),
                40,
                f"status degraded: {name}",
            )
            got = last(watcher)
            assert got["reason"].startswith(reason), got
            assert 0.5 <= got["diagnoses"][name] <= 1.0
            retained = [m for m in watcher.messages if m.topic == TOPIC]
            assert all(m.payload["kind"] == "camera_status" for m in retained)
            cam = edge.camera("cam-road")
            assert cam["state"] == "degraded" and name in cam["diagnoses"]
            serve(road_clip)
            watcher.wait_for(clean_online, 40, f"online again after {name}")
        metrics = edge.get_text("/metrics")
        assert 'hazardwatch_edge_camera_diagnosis{camera="cam-road",diagnosis="covered"}' in metrics
        assert 'hazardwatch_edge_camera_online_seconds_total{camera="cam-road"}' in metrics
        today = edge.camera("cam-road")["availability"]["today"]
        assert today["online_s"] > 0 and today["degraded_s"] > 0 and 0 < today["availability"] < 1
    # The availability figure is kept beside the outbox and survives the process.
    assert (tmp_path / "camera-availability.json").is_file()
    # A late subscriber gets the retained status: the camera ended online.
    late = MqttWatcher(mosquitto.port, topic=TOPIC, client_id="late-watcher").start()
    late.wait_for(lambda w: w.messages, 10, "retained status")
    assert late.messages[0].retain and late.messages[0].payload["state"] == "online"
    late.stop()
    watcher.stop()
