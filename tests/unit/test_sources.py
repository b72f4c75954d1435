"""Camera sources without external processes: image folders, a real local HTTP server, a synthetic
video file made here with PyAV, the persistent reader with a test double, and the factory."""

from __future__ import annotations

import base64
import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hazardwatch.edge.config import BackoffConfig, CameraConfig, PatrolConfig
from hazardwatch.edge.sources import CapturedFrame, FrameSource, PersistentReader, SourceError, open_source
from hazardwatch.edge.sources.av_stream import AvStreamSource
from hazardwatch.edge.sources.http_snapshot import HttpSnapshotSource
from hazardwatch.edge.sources.image_folder import ImageFolderSource

pytestmark = pytest.mark.quick


def solid(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def level(frame: CapturedFrame) -> float:
    return float(frame.image.mean())


# --------------------------------------------------------------------------- image folder


def test_image_folder_loops_in_name_order(tmp_path: Path):
    for name, value in [("b.png", 20), ("a.jpg", 10), ("c.tiff", 30), ("notes.txt", None)]:
        if value is None:
            (tmp_path / name).write_text("not an image")
        else:
            cv2.imwrite(str(tmp_path / name), solid(value))
    src = ImageFolderSource(str(tmp_path))
    levels = [round(level(src.snapshot())) for _ in range(7)]
    assert levels == [10, 20, 30, 10, 20, 30, 10]
    frame = src.snapshot()
    assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
    assert abs(frame.captured_at - time.time()) < 5


def test_image_folder_file_url(tmp_path: Path):
    cv2.imwrite(str(tmp_path / "x.png"), solid(77))
    assert round(level(ImageFolderSource(f"file://{tmp_path}").snapshot())) == 77


def test_image_folder_empty_and_bad_image(tmp_path: Path):
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(str(tmp_path)).snapshot()
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(SourceError, match=r"broken\.jpg"):
        ImageFolderSource(str(tmp_path)).snapshot()
    with pytest.raises(SourceError, match="missing"):
        ImageFolderSource(str(tmp_path / "missing")).snapshot()


def test_image_folder_stream_paced(tmp_path: Path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), solid(10 * (i + 1)))
    gen = ImageFolderSource(str(tmp_path), fps=20).stream(keyframes_only=True)
    t0 = time.monotonic()
    got = [round(level(next(gen))) for _ in range(5)]
    gen.close()
    assert got == [10, 20, 30, 10, 20]
    assert 0.15 < time.monotonic() - t0 < 1.5  # 4 periods of 50 ms


# --------------------------------------------------------------------------- HTTP snapshot


class _Handler(http.server.BaseHTTPRequestHandler):
    jpeg = cv2.imencode(".jpg", solid(128, 120, 160))[1].tobytes()

    def log_message(self, format, *args):  # keep pytest output quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "image/jpeg") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the slow test's client gave up
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/snap.jpg":
            self._send(200, self.jpeg)
        elif self.path == "/auth.jpg":
            expected = "Basic " + base64.b64encode(b"admin:s3cret").decode()
            if self.headers.get("Authorization") == expected:
                self._send(200, self.jpeg)
            else:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                self.send_header("Content-Length", "0")
                self.end_headers()
        elif self.path == "/error":
            self._send(500, b"boom", "text/plain")
        elif self.path == "/text":
            self._send(200, b"<html>login page</html>", "text/html")
        elif self.path == "/slow.jpg":
            time.sleep(3)
            self._send(200, self.jpeg)
        else:
            self._send(404, b"", "text/plain")


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_snapshot_ok(http_base: str):
    frame = HttpSnapshotSource(f"{http_base}/snap.jpg").snapshot()
    assert frame.image.shape == (120, 160, 3)
    assert abs(level(frame) - 128) < 3
    assert frame.connect_cpu_s >= 0 and frame.decode_cpu_s >= 0


def test_http_snapshot_basic_auth_and_safe_url(http_base: str):
    host = http_base.removeprefix("http://")
    ok = HttpSnapshotSource(f"http://admin:s3cret@{host}/auth.jpg")
    assert ok.snapshot().image.shape == (120, 160, 3)
    bad = HttpSnapshotSource(f"http://admin:wrong@{host}/auth.jpg")
    with pytest.raises(SourceError, match="401") as info:
        bad.snapshot()
    assert "wrong" not in str(info.value) and "admin" not in str(info.value)


@pytest.mark.parametrize(
    ("path", "match"),
    [("/error", "HTTP 500"), ("/text", "not a decodable image"), ("/nothing", "HTTP 404")],
)
def test_http_snapshot_errors(http_base: str, path: str, match: str):
    with pytest.raises(SourceError, match=match):
        HttpSnapshotSource(http_base + path).snapshot()


def test_http_snapshot_size_limit(http_base: str):
    with pytest.raises(SourceError, match="too large"):
        HttpSnapshotSource(f"{http_base}/snap.jpg", max_bytes=100).snapshot()


def test_http_snapshot_timeout(http_base: str):
    src = HttpSnapshotSource(f"{http_base}/slow.jpg", open_timeout_s=0.5, read_timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="timed out"):
        src.snapshot()
    assert time.monotonic() - t0 < 1.5


def test_http_snapshot_connection_refused():
    from hazardwatch.procs import free_port

    with pytest.raises(SourceError, match="cannot connect"):
        HttpSnapshotSource(f"http://127.0.0.1:{free_port()}/snap.jpg", open_timeout_s=1).snapshot()


def test_http_stream_polls(http_base: str):
    gen = HttpSnapshotSource(f"{http_base}/snap.jpg", poll_interval_s=0.1).stream(keyframes_only=True)
    t0 = time.monotonic()
    frames = [next(gen) for _ in range(4)]
    gen.close()
    assert all(f.image.shape == (120, 160, 3) for f in frames)
    assert 0.25 < time.monotonic() - t0 < 2.0


# --------------------------------------------------------------------------- local video replay

FPS = 10


BITS = 6  # frame index in binary: 6 vertical bars, black or white, read back at their centres


def coded(i: int) -> np.ndarray:
    img = np.zeros((48, 64, 3), dtype=np.uint8)
    for bit in range(BITS):
        if i >> bit & 1:
            img[:, bit * 10 + 2 : bit * 10 + 10] = 255
    return img


def index_of(frame: CapturedFrame) -> int:
    row = frame.image[24, :, :].mean(axis=1)
    return sum(1 << bit for bit in range(BITS) if row[bit * 10 + 6] > 128)


def make_clip(path: Path, seconds: float, gop: int) -> Path:
    """A synthetic clip whose frame i shows i in binary: what a snapshot returns tells its position."""
    n = round(seconds * FPS)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = 0
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.bit_rate = 4_000_000
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(coded(i), format="bgr24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=4.0, gop=10)


def test_video_snapshot_follows_wall_clock(clip: Path):
    src = AvStreamSource(str(clip))
    assert abs(src.duration_s() - 4.0) < 0.15
    first = src.snapshot()
    assert first.image.shape == (48, 64, 3)
    assert index_of(first) <= 3
    # Pretend the replay started 2.05 s ago: the frame shown now is frame 20 (a delta frame).
    src.t0 = time.monotonic() - 2.05
    assert index_of(src.snapshot()) in (20, 21)
    src.t0 = time.monotonic() - 1.55
    assert index_of(src.snapshot()) in (15, 16)
    # Past the end it wraps around like a looping camera.
    src.t0 = time.monotonic() - (4.0 + 1.25)
    assert index_of(src.snapshot()) in (12, 13)
    # And real time advances it.
    src.t0 = time.monotonic()
    a = index_of(src.snapshot())
    time.sleep(0.6)
    b = index_of(src.snapshot())
    assert b >= a + 4
    assert first.connect_cpu_s > 0 and first.decode_cpu_s >= 0


def test_video_file_url_and_missing(clip: Path, tmp_path: Path):
    assert AvStreamSource(f"file://{clip}").snapshot().image.shape == (48, 64, 3)
    with pytest.raises(SourceError, match="no such video file"):
        AvStreamSource(str(tmp_path / "gone.mp4")).snapshot()
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match=r"junk\.mp4"):
        AvStreamSource(str(tmp_path / "junk.mp4")).snapshot()


def test_video_stream_keyframes_paced_and_looping(tmp_path: Path):
    short = make_clip(tmp_path / "short.mp4", seconds=1.0, gop=5)
    gen = AvStreamSource(str(short)).stream(keyframes_only=True)
    t0 = time.monotonic()
    got = [index_of(next(gen)) for _ in range(5)]
    elapsed = time.monotonic() - t0
    gen.close()
    assert got == [0, 5, 0, 5, 0]  # key frames only, looping at EOF
    assert 1.7 < elapsed < 3.0  # paced: the fifth key frame is shown at 2.0 s


def test_video_stream_all_frames_paced(clip: Path):
    gen = AvStreamSource(str(clip)).stream(keyframes_only=False)
    t0 = time.monotonic()
    got = [index_of(next(gen)) for _ in range(6)]
    elapsed = time.monotonic() - t0
    gen.close()
    assert got == [0, 1, 2, 3, 4, 5]
    assert 0.4 < elapsed < 1.5


def test_rtsp_closed_port_is_source_error():
    from hazardwatch.procs import free_port

    port = free_port()
    src = AvStreamSource(f"rtsp://user:pw@127.0.0.1:{port}/cam", open_timeout_s=2, read_timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        src.snapshot()
    assert time.monotonic() - t0 < 3
    assert "pw" not in str(info.value) and f"127.0.0.1:{port}/cam" in str(info.value)


# --------------------------------------------------------------------------- persistent reader


class FlakySource(FrameSource):
    """Test double: the first `failures` connections raise; later ones yield `frames` frames then end."""

    def __init__(self, failures: int = 1, frames: int = 100, hold: bool = False) -> None:
        super().__init__("fake://cam")
        self.failures = failures
        self.frames = frames
        self.hold = hold
        self.calls: list[float] = []
        self.release = threading.Event()

    def snapshot(self) -> CapturedFrame:
        raise NotImplementedError

    def stream(self, keyframes_only: bool) -> Iterator[CapturedFrame]:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise SourceError("fake://cam: connection refused")
        for i in range(self.frames):
            yield CapturedFrame(image=solid(i % 256, 4, 4), captured_at=time.time())
        if self.hold:
            self.release.wait(10)


def wait_for(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_persistent_reader_reconnects_and_keeps_latest():
    src = FlakySource(failures=1, frames=200, hold=True)
    reader = PersistentReader(src, backoff=BackoffConfig(initial_s=0.05, max_s=0.2, jitter=0.2))
    assert reader.latest() is None
    reader.start()
    try:
        assert wait_for(lambda: reader.frames_total == 200)
        assert reader.connected
        assert reader.reconnects == 1
        assert reader.last_error == "fake://cam: connection refused"
        latest = reader.latest()
        assert latest is not None and latest.image[0, 0, 0] == 199  # only the newest is kept
    finally:
        src.release.set()
        assert reader.stop(timeout=2)
    assert not reader.running and not reader.connected


def test_persistent_reader_backoff_grows_and_is_capped():
    src = FlakySource(failures=10_000)
    reader = PersistentReader(src, backoff=BackoffConfig(initial_s=0.04, max_s=0.16, jitter=0.0))
    reader.start()
    try:
        assert wait_for(lambda: len(src.calls) >= 6)
    finally:
        reader.stop()
    gaps = np.diff(src.calls[:6])
    assert gaps[0] < gaps[1] < gaps[2]  # 0.04, 0.08, 0.16
    assert all(g < 0.16 + 0.1 for g in gaps)
    assert not reader.connected and "connection refused" in (reader.last_error or "")


def test_persistent_reader_stops_promptly_during_backoff():
    src = FlakySource(failures=10_000)
    reader = PersistentReader(src, backoff=BackoffConfig(initial_s=30, max_s=60, jitter=0.1))
    reader.start()
    assert wait_for(lambda: reader.last_error is not None)
    t0 = time.monotonic()
    assert reader.stop(timeout=5)
    assert time.monotonic() - t0 < 0.5


def test_persistent_reader_on_video_file(clip: Path):
    reader = PersistentReader(AvStreamSource(str(clip)), keyframes_only=True)
    reader.start()
    try:
        assert wait_for(lambda: reader.frames_total >= 1, timeout=4)
        assert reader.connected and reader.last_error is None
    finally:
        assert reader.stop(timeout=3)  # the file pacing sleeps at most one key-frame interval (1 s)


# --------------------------------------------------------------------------- factory


def camera(source: str) -> CameraConfig:
    return CameraConfig(id="cam1", source=source, hazards={"smoke": {}})


def test_factory_picks_by_scheme_and_path(tmp_path: Path, clip: Path):
    patrol = PatrolConfig(open_timeout_s=3, read_timeout_s=4)
    folder = open_source(camera(str(tmp_path)), patrol)
    assert isinstance(folder, ImageFolderSource)
    assert (folder.open_timeout_s, folder.read_timeout_s) == (3, 4)
    assert isinstance(open_source(camera(str(clip)), patrol), AvStreamSource)
    assert isinstance(open_source(camera(f"file://{clip}"), patrol), AvStreamSource)
    assert isinstance(open_source(camera("http://10.0.0.5/snap.jpg"), patrol), HttpSnapshotSource)
    assert isinstance(open_source(camera("rtsp://u:p@10.0.0.5:554/main"), patrol), AvStreamSource)
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match=r"nope\.mp4"):
        open_source(camera(str(missing)), patrol)
