"""AvStreamSource and PersistentReader against a real RTSP server (GStreamer, loopback, looping clips).

Shows: a patrol snapshot is fast and reports its CPU cost; a persistent key-frame reader stays live;
a killed or frozen camera is reported and recovered on the same URL; a dead address fails within the
open timeout.  Measurements are printed (run with -s) and attached as junit properties.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable

import pytest

from hazardwatch.edge.config import BackoffConfig
from hazardwatch.edge.sources import PersistentReader, SourceError
from hazardwatch.edge.sources.av_stream import AvStreamSource
from hazardwatch.harness.media import probe_clip
from hazardwatch.procs import free_port

pytestmark = [pytest.mark.rtsp, pytest.mark.data]


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_snapshot_is_fresh_and_measured(rtsp_server_factory, fire_clip, record_property):
    info = probe_clip(fire_clip)
    server = rtsp_server_factory({"/fire": fire_clip})
    src = AvStreamSource(server.url("fire"), open_timeout_s=5, read_timeout_s=5)
    walls, connects, decodes = [], [], []
    for _ in range(3):
        t0 = time.monotonic()
        frame = src.snapshot()
        walls.append(time.monotonic() - t0)
        connects.append(frame.connect_cpu_s)
        decodes.append(frame.decode_cpu_s)
        assert frame.image.shape == (info["height"], info["width"], 3)
        assert abs(frame.captured_at - time.time()) < 1
    assert max(walls) < 4.0
    assert all(c > 0 for c in connects) and all(d > 0 for d in decodes)
    msg = (
        f"RTSP snapshot {info['width']}x{info['height']}: wall {min(walls):.2f}-{max(walls):.2f} s, "
        f"connect CPU {1000 * max(connects):.1f} ms, decode CPU {1000 * max(decodes):.1f} ms"
    )
    print(msg)
    record_property("rtsp_snapshot", msg)


def test_snapshot_joining_a_running_stream(rtsp_server_factory, road_clip, record_property):
    """Like a real camera: another client keeps the stream running, so a visit joins mid-GOP and waits
    for the next key frame (the server restarts an idle mount at a key frame, which hides that wait)."""
    server = rtsp_server_factory({"/road": road_clip})
    url = server.url("road")
    watcher = PersistentReader(AvStreamSource(url), keyframes_only=True)
    watcher.start()
    try:
        assert wait_for(lambda: watcher.frames_total >= 1, timeout=5), watcher.last_error
        walls = []
        for i in range(4):
            time.sleep(0.23 * (i + 1))  # land at different points of the 1 s GOP
            t0 = time.monotonic()
            frame = AvStreamSource(url).snapshot()
            walls.append(time.monotonic() - t0)
            assert frame.image.shape[:2] == (probe_clip(road_clip)["height"], probe_clip(road_clip)["width"])
        assert max(walls) < 1.0 + 1.0  # at most one GOP (1 s) plus connect
    finally:
        watcher.stop()
    msg = "RTSP snapshot joining mid-stream: wall " + ", ".join(f"{w:.2f}" for w in walls) + " s"
    print(msg)
    record_property("rtsp_snapshot_mid_stream", msg)


def test_persistent_keyframes_stay_live(rtsp_server_factory, road_clip, record_property):
    server = rtsp_server_factory({"/road": road_clip})
    reader = PersistentReader(AvStreamSource(server.url("road")), keyframes_only=True)
    reader.start()
    try:
        assert wait_for(lambda: reader.frames_total >= 1, timeout=5), reader.last_error
        cpu0, wall0, n0 = time.process_time(), time.monotonic(), reader.frames_total
        ages = []
        while time.monotonic() - wall0 < 6.0:
            time.sleep(0.5)
            latest = reader.latest()
            assert latest is not None
            ages.append(time.time() - latest.captured_at)
        cpu_pct = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
        frames = reader.frames_total - n0
        assert reader.connected and reader.last_error is None
        assert frames >= 4  # one key frame per second (gop 10 at 10 fps)
        assert max(ages) < 2.0  # always fresh: nothing queues up behind the reader
        assert latest.image.shape[:2] == (probe_clip(road_clip)["height"], probe_clip(road_clip)["width"])
    finally:
        assert reader.stop(timeout=5)
    msg = f"persistent key frames: {frames} frames in 6 s, max age {max(ages):.2f} s, CPU {cpu_pct:.1f} % of a core"
    print(msg)
    record_property("rtsp_persistent_keyframes", msg)


def test_persistent_all_frames_cpu(rtsp_server_factory, road_clip, record_property):
    """For comparison with key frames only: decoding every frame of the same stream."""
    server = rtsp_server_factory({"/road": road_clip})
    reader = PersistentReader(AvStreamSource(server.url("road")), keyframes_only=False)
    reader.start()
    try:
        assert wait_for(lambda: reader.frames_total >= 1, timeout=5), reader.last_error
        cpu0, wall0, n0 = time.process_time(), time.monotonic(), reader.frames_total
        time.sleep(4.0)
        cpu_pct = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
        frames = reader.frames_total - n0
        assert frames >= 30  # 10 fps
    finally:
        reader.stop(timeout=5)
    msg = f"persistent all frames: {frames} frames in 4 s, CPU {cpu_pct:.1f} % of a core"
    print(msg)
    record_property("rtsp_persistent_all", msg)


def test_reader_recovers_after_server_killed(rtsp_server_factory, fire_clip):
    server = rtsp_server_factory({"/fire": fire_clip})
    reader = PersistentReader(
        AvStreamSource(server.url("fire"), open_timeout_s=2, read_timeout_s=2),
        keyframes_only=True,
        backoff=BackoffConfig(initial_s=0.2, max_s=1.0, jitter=0.2),
    )
    reader.start()
    try:
        assert wait_for(lambda: reader.frames_total >= 2, timeout=6), reader.last_error
        server.kill()  # the camera drops off the network mid-stream
        assert wait_for(lambda: not reader.connected, timeout=4)
        assert reader.last_error is not None
        assert wait_for(lambda: reader.reconnects >= 1, timeout=4)  # retrying (and failing) meanwhile
        before = reader.frames_total
        server.start()  # same port, same URL
        assert wait_for(lambda: reader.frames_total > before + 1, timeout=8), reader.last_error
        assert reader.connected
        latest = reader.latest()
        assert latest is not None and time.time() - latest.captured_at < 2
    finally:
        assert reader.stop(timeout=5)


def test_reader_detects_frozen_camera(rtsp_server_factory, fire_clip):
    """A camera that keeps the TCP session but stops sending (SIGSTOP) is caught by the read timeout."""
    server = rtsp_server_factory({"/fire": fire_clip})
    reader = PersistentReader(
        AvStreamSource(server.url("fire"), open_timeout_s=1.5, read_timeout_s=1.5),
        keyframes_only=True,
        backoff=BackoffConfig(initial_s=0.2, max_s=1.0, jitter=0.2),
    )
    reader.start()
    assert server.proc is not None
    try:
        assert wait_for(lambda: reader.frames_total >= 2, timeout=6), reader.last_error
        server.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        assert wait_for(lambda: not reader.connected, timeout=1.5 + 1.0 + 1.5)  # read timeout + a GOP + slack
        frozen_after = time.monotonic() - t0
        assert reader.last_error is not None
        t_stop = time.monotonic()
        assert reader.stop(timeout=5)  # even while a reconnect hangs on the frozen server
        assert time.monotonic() - t_stop < 2.5
        print(f"frozen camera detected after {frozen_after:.2f} s: {reader.last_error}")
    finally:
        server.proc.send_signal(signal.SIGCONT)
        reader.stop(timeout=5)


def test_closed_port_fails_within_open_timeout():
    src = AvStreamSource(f"rtsp://127.0.0.1:{free_port()}/cam", open_timeout_s=2, read_timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="cannot open"):
        src.snapshot()
    assert time.monotonic() - t0 < 2 + 0.5


def test_silent_server_fails_within_open_timeout():
    """A port that accepts TCP but never answers RTSP (a hung camera) must not block for 30 s."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        src = AvStreamSource(f"rtsp://admin:pw@127.0.0.1:{port}/cam", open_timeout_s=1.5, read_timeout_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(SourceError) as info:
            src.snapshot()
        elapsed = time.monotonic() - t0
    assert elapsed < 1.5 + 1.0
    assert "pw" not in str(info.value)


def test_unknown_mount_is_source_error(rtsp_server_factory, fire_clip):
    server = rtsp_server_factory({"/fire": fire_clip})
    src = AvStreamSource(f"rtsp://127.0.0.1:{server.port}/nope", open_timeout_s=3, read_timeout_s=3)
    with pytest.raises(SourceError, match="/nope"):
        src.snapshot()
