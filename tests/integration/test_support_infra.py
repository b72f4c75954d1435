"""Proves the test infrastructure itself: looping RTSP server, private Mosquitto, prepared clips.

If these fail, application tests that depend on the fixtures cannot be trusted either.
"""

from __future__ import annotations

import queue
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import paho.mqtt.client as mqtt
import pytest

from hazardwatch.harness.media import frames_to_clip, probe_clip
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.procs import mosquitto_binary

# As the edge opens streams.  FFmpeg then spends ~2.8 s probing before the first frame (frame-rate
# estimation); "analyzeduration": "1000000" or "fpsprobesize": "0" cut that to ~1 s.
RTSP_OPTIONS = {"rtsp_transport": "tcp"}
RTSP_TIMEOUT = (5.0, 5.0)


def _first_frame(url: str) -> av.VideoFrame:
    """Open an RTSP URL the way the edge does and decode one frame."""
    with av.open(url, options=RTSP_OPTIONS, timeout=RTSP_TIMEOUT) as container:
        for frame in container.decode(video=0):
            return frame
    raise AssertionError(f"{url} ended before the first frame")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Path:
    """A synthetic 3 s, 10 fps, 160x120 clip (no shared data needed): short, so looping shows fast."""
    frames = [np.full((120, 160, 3), (i * 8) % 256, np.uint8) for i in range(30)]
    return frames_to_clip(frames, tmp_path_factory.mktemp("clips") / "short.mp4", fps=10, gop=10)


# --------------------------------------------------------------------------------------------- RTSP


@pytest.mark.rtsp
@pytest.mark.data
@pytest.mark.timeout(90)
def test_rtsp_serves_shared_clips_at_their_size(rtsp_server_factory, fire_clip: Path, road_clip: Path) -> None:
    assert probe_clip(fire_clip)["fps"] == 10
    server = rtsp_server_factory({"/fire": fire_clip, "/road": road_clip})
    fire = _first_frame(server.url("fire"))
    assert (fire.width, fire.height) == (426, 240)
    road = _first_frame(server.url("/road"))
    assert (road.width, road.height) == (768, 432)
    assert road.to_ndarray(format="bgr24").shape == (432, 768, 3)


@pytest.mark.rtsp
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_rtsp_stream_loops_past_clip_end(rtsp_server_factory, short_clip: Path) -> None:
    clip = probe_clip(short_clip)
    assert clip["duration"] == pytest.approx(3.0, abs=0.2)
    server = rtsp_server_factory({"/loop": short_clip})
    wanted = clip["duration"] + 2.5  # seconds of stream: only possible if the server loops
    frames, first_pts, last_pts = 0, None, None
    start = time.monotonic()
    with av.open(server.url("loop"), options=RTSP_OPTIONS, timeout=RTSP_TIMEOUT) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            assert (frame.width, frame.height) == (160, 120)
            frames += 1
            if frame.pts is not None:
                first_pts = frame.pts if first_pts is None else first_pts
                last_pts = frame.pts
            if first_pts is not None and (last_pts - first_pts) * stream.time_base >= wanted:
                break
            assert time.monotonic() - start < 40, "stream stopped delivering frames"
    assert frames >= wanted * 10 * 0.8, frames
    # Timestamps keep rising across the loop point (no rewind a client would choke on).
    assert last_pts is not None and first_pts is not None and last_pts > first_pts


@pytest.mark.rtsp
@pytest.mark.timeout(120)
def test_rtsp_many_clients_share_one_stream(rtsp_server_factory, short_clip: Path) -> None:
    server = rtsp_server_factory({"/cam": short_clip})
    with ThreadPoolExecutor(4) as pool:  # concurrently: each FFmpeg open spends ~2.8 s probing
        frames = list(pool.map(lambda _: _first_frame(server.url("cam")), range(4)))
    assert [(f.width, f.height) for f in frames] == [(160, 120)] * 4


@pytest.mark.rtsp
@pytest.mark.timeout(120)
def test_rtsp_kill_breaks_reads_and_restart_serves_again(rtsp_server_factory, short_clip: Path) -> None:
    server = rtsp_server_factory({"/cam": short_clip})
    port = server.port
    container = av.open(server.url("cam"), options=RTSP_OPTIONS, timeout=RTSP_TIMEOUT)
    try:
        frames = container.decode(video=0)
        next(frames)
        server.kill()
        failed_at = None
        start = time.monotonic()
        try:
            for _ in frames:
                if time.monotonic() - start > 20:
                    break
        except (av.error.FFmpegError, OSError):
            pass
        failed_at = time.monotonic() - start
        assert failed_at < 20, "reads kept succeeding after the server was killed"
    finally:
        container.close()

    with pytest.raises((av.error.FFmpegError, OSError)):
        av.open(server.url("cam"), options=RTSP_OPTIONS, timeout=(2.0, 2.0))

    server.restart()
    assert server.port == port
    frame = _first_frame(server.url("cam"))
    assert (frame.width, frame.height) == (160, 120)


@pytest.mark.rtsp
def test_rtsp_server_rejects_missing_file(rtsp_server_factory, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        rtsp_server_factory({"/none": tmp_path / "missing.mp4"})


# --------------------------------------------------------------------------------------------- MQTT


def _client(broker: MosquittoBroker, inbox: queue.Queue[mqtt.MQTTMessage] | None = None) -> mqtt.Client:
    """A paho 2.x client connected (and its network loop running) to the private broker."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    connected: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda c, u, flags, rc, props: connected.put(rc)
    if inbox is not None:
        client.on_message = lambda c, u, msg: inbox.put(msg)
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    rc = connected.get(timeout=5)
    assert not getattr(rc, "is_failure", False), rc
    return client


def _subscribe(client: mqtt.Client, topic: str, qos: int = 1) -> None:
    """Subscribe and wait for SUBACK, so nothing published afterwards can be missed."""
    acked: queue.Queue[object] = queue.Queue()
    client.on_subscribe = lambda c, u, mid, codes, props: acked.put(codes)
    client.subscribe(topic, qos=qos)
    codes = acked.get(timeout=5)
    assert all(not code.is_failure for code in codes), codes


@pytest.mark.mqtt
@pytest.mark.timeout(30)
def test_private_broker_is_not_the_shared_one(mosquitto: MosquittoBroker) -> None:
    assert mosquitto.port != 1883
    assert mosquitto.host == "127.0.0.1"
    assert "max_queued_messages 1000000" in mosquitto.conf_path.read_text()


@pytest.mark.mqtt
@pytest.mark.timeout(30)
def test_a_broker_that_cannot_start_says_why_at_once(tmp_path: Path) -> None:
    """A bad config ends the start with the broker's own complaint, not after the whole start timeout."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    broker = MosquittoBroker(workdir=tmp_path / "mq", extra_config="no_such_option 1", start_timeout=30)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="mosquitto did not start") as info:
        broker.start()
    assert time.monotonic() - t0 < 10
    assert "no_such_option" in str(info.value)
    assert not broker.running


def test_mqtt_qos1_publish_subscribe(mosquitto: MosquittoBroker) -> None:
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    sub = _client(mosquitto, inbox)
    pub = _client(mosquitto)
    try:
        _subscribe(sub, "hw/test/#")
        info = pub.publish("hw/test/a", b"hello", qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
        msg = inbox.get(timeout=5)
        assert (msg.topic, msg.payload, msg.qos) == ("hw/test/a", b"hello", 1)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()


@pytest.mark.mqtt
@pytest.mark.timeout(30)
def test_mqtt_retained_message_survives_restart(mosquitto: MosquittoBroker) -> None:
    pub = _client(mosquitto)
    info = pub.publish("hw/state/cam1", b"online", qos=1, retain=True)
    info.wait_for_publish(timeout=5)
    pub.disconnect()
    pub.loop_stop()

    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port

    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    sub = _client(mosquitto, inbox)
    try:
        _subscribe(sub, "hw/state/#")
        msg = inbox.get(timeout=5)
        assert (msg.topic, msg.payload, msg.retain) == ("hw/state/cam1", b"online", True)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert "mosquitto version" in mosquitto.log_text()


# --------------------------------------------------------------------------------------------- data


@pytest.mark.data
def test_shared_data_has_the_test_videos(shared_data: Path) -> None:
    assert (shared_data / "media-furg-fire/fire/house6.mp4").is_file()
    assert (shared_data / "media-intel-road/traffic_road/car-detection.mp4").is_file()
