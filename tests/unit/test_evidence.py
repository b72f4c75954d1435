"""Edge evidence: bounded buffers, clips (MP4 and the JPEG fallback), an index that survives a
restart, retention that never deletes unsent evidence, and an upload that resumes after a cut."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from hazardwatch.central.services import evidence_files
from hazardwatch.central.store import Database
from hazardwatch.contract import AlertState, Hazard
from hazardwatch.edge.central_client import CentralClient
from hazardwatch.edge.config import EdgeConfig
from hazardwatch.edge.detect import Detection
from hazardwatch.edge.evidence import EvidenceStore, EvidenceUploader, FrameRing
from hazardwatch.edge.predictor import AlertEvent

pytestmark = pytest.mark.quick


def config(tmp_path: Path, **evidence) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "edge_id": "e1",
            "broker": None,
            "cameras": [{"id": "cam", "source": str(tmp_path), "hazards": {"smoke": {}}}],
            "models": [{"manifest": str(tmp_path / "m.json")}],
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "evidence": {"path": str(tmp_path / "evidence"), **evidence},
            "central": {"url": "http://127.0.0.1:1", "token": {"value": "t"}},
        }
    )


def frame(k: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(0, 255, (*size, 3), dtype=np.uint8)


def event(state: str = "new", img: np.ndarray | None = None, at: float = 100.0) -> AlertEvent:
    return AlertEvent(
        alert_id="alert0123456789abcdef",
        state=AlertState(state),
        camera_id="cam",
        hazard=Hazard.SMOKE,
        zone=None,
        score=0.8,
        boxes=(Detection(0.1, 0.1, 0.3, 0.3, 0.8),),
        first_frame_at=at - 2,
        last_frame_at=at,
        model_name="m",
        model_version="1",
        frame=img,
    )


def wait_items(store: EvidenceStore, n: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = store.items()
        if len(items) >= n:
            return items
        time.sleep(0.05)
    raise AssertionError(f"{n} evidence items expected, have {store.items()}")


def test_ring_is_bounded_by_frames_and_bytes():
    ring = FrameRing(max_frames=4, max_bytes=3 * 240 * 320 * 3)
    for k in range(10):
        ring.add(float(k), frame(k))
    assert len(ring) == 3 and ring.nbytes <= ring.max_bytes
    assert [at for at, _ in ring.frames()] == [7.0, 8.0, 9.0]


@pytest.mark.parametrize("mp4", [True, False])
def test_clip_and_full_snapshot_on_alert_and_index_survives_restart(tmp_path, mp4):
    store = EvidenceStore(config(tmp_path, frames_after=2, buffer_frames=3, buffer_max_side=160))
    if not mp4:
        store.codec = None
    elif store.codec is None:
        pytest.skip("this PyAV has no MP4 encoder")
    for k in range(5):
        store.observe("cam", frame(k), 90.0 + k)
    full = frame(99, (480, 640))
    store.on_alert(event("new", full, at=95.0), "cam", "e1")
    store.observe("cam", frame(6), 96.0)
    store.observe("cam", frame(7), 97.0)  # the second frame after closes the clip
    items = wait_items(store, 2)
    store.close()
    by_kind = {i["kind"]: i for i in items}
    snap = tmp_path / "evidence" / by_kind["snapshot"]["path"]
    import cv2

    assert cv2.imread(str(snap)).shape == (480, 640, 3)  # full resolution
    clip = by_kind["clip"]
    meta = json.loads(clip["meta"])
    assert (meta["before"], meta["after"], meta["frames"]) == (3, 2, 5) and meta["boxes"]
    data = (tmp_path / "evidence" / clip["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == clip["sha256"]
    if mp4:
        import av

        assert clip["content_type"] == "video/mp4"
        with av.open(io.BytesIO(data)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 5
    else:
        assert clip["content_type"] == "application/x-tar"
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert len(tar.getmembers()) == 5
    again = EvidenceStore(config(tmp_path))
    assert {i["id"] for i in again.items(unsent_only=True)} == {i["id"] for i in items}
    again.close()


@pytest.mark.parametrize("mp4", [True, False])
@pytest.mark.parametrize(("camera", "clip_size"), [((480, 640), (640, 480)), ((361, 641), (640, 360))])
def test_the_clip_keeps_the_cameras_aspect_and_says_its_size(tmp_path, mp4, camera, clip_size):
    """A 4:3 camera's clip is 4:3 and a 16:9 one's 16:9 (an MP4 only rounded down to even sides), and the
    meta says the size, so the dashboard frames the clip like the snapshots before the video loads."""
    store = EvidenceStore(config(tmp_path, frames_after=1, buffer_frames=2))
    if not mp4:
        store.codec = None
    elif store.codec is None:
        pytest.skip("this PyAV has no MP4 encoder")
    for k in range(2):
        store.observe("cam", frame(k, camera), 90.0 + k)
    store.on_alert(event("new", frame(9, camera), at=91.0), "cam", "e1")
    store.observe("cam", frame(3, camera), 92.0)
    (clip,) = [i for i in wait_items(store, 2) if i["kind"] == "clip"]
    store.close()
    meta = json.loads(clip["meta"])
    data = (tmp_path / "evidence" / clip["path"]).read_bytes()
    if mp4:
        import av

        with av.open(io.BytesIO(data)) as c:
            shown = next((f.width, f.height) for f in c.decode(video=0))
        assert shown == clip_size
    else:
        shown = (camera[1], camera[0])  # the JPEGs keep the camera's own size
    assert (meta["width"], meta["height"]) == shown


def test_retention_deletes_uploaded_evidence_first_and_never_unsent(tmp_path):
    store = EvidenceStore(config(tmp_path, frames_after=0, max_bytes=1 << 20))
    store.codec = None
    img = frame(1, (480, 640))  # ~ 300 kB as JPEG of noise: three fit in 1 MiB
    for k in range(3):
        store.on_alert(event("new", img, at=100.0 + k), "cam", "e1")
    first = wait_items(store, 3)
    store.on_alert(event("new", img, at=110.0), "cam", "e1")  # no room, nothing uploaded yet: refused
    store.close()
    assert store.refused == 1
    store = EvidenceStore(config(tmp_path, frames_after=0, max_bytes=1 << 20))
    assert len(store.items()) == 3
    store.mark_uploaded(first[0]["id"])
    store.on_alert(event("new", img, at=120.0), "cam", "e1")
    items = wait_items(store, 3)
    deadline = time.monotonic() + 10
    while first[0]["id"] in {i["id"] for i in store.items()} and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = {i["id"] for i in store.items()}
    assert first[0]["id"] not in ids and {first[1]["id"], first[2]["id"]} <= ids and len(items) == 3
    assert store.used_bytes() <= 1 << 20
    store.close()


class _FakeCentral(BaseHTTPRequestHandler):
    """Central's evidence endpoints on a real store; drops the connection on the first second chunk."""

    db: Database
    cut_done = False

    def log_message(self, *args: object) -> None:
        pass

    def _ident(self) -> tuple[str, str]:
        parts = self.path.split("/")
        return parts[4], parts[6]

    def do_HEAD(self) -> None:
        edge, ident = self._ident()
        with self.db.tx() as tx:
            found = evidence_files.offset(tx, edge, ident)
        self.send_response(404 if found is None else 200)
        self.send_header("Upload-Offset", str(found[0] if found else 0))
        self.end_headers()

    def do_PUT(self) -> None:
        edge, ident = self._ident()
        body = self.rfile.read(int(self.headers["Content-Length"]))
        rng = evidence_files.parse_range(self.headers["Content-Range"])
        if rng[0] > 0 and not type(self).cut_done:
            type(self).cut_done = True
            self.connection.close()  # the network fails mid-upload
            return
        meta = evidence_files.Meta.parse(self.headers["X-Evidence-Meta"])
        with self.db.tx() as tx:
            result = evidence_files.put_chunk(tx, edge, ident, rng, body, meta, time.time())
        raw = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def test_upload_resumes_from_centrals_offset_after_a_cut(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'central.db'}")
    db.migrate()
    _FakeCentral.db = db
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeCentral)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = config(tmp_path, frames_after=0, chunk_bytes=16 << 10)
    cfg = cfg.model_copy(
        update={"central": cfg.central.model_copy(update={"url": f"http://127.0.0.1:{server.server_port}"})}
    )
    uploader = EvidenceUploader(CentralClient(cfg.central), "e1", 16 << 10)
    store = EvidenceStore(cfg, uploader)
    store.codec = None
    store.on_alert(event("new", frame(3, (480, 640))), "cam", "e1")
    deadline = time.monotonic() + 30
    while (not store.items() or store.items(unsent_only=True)) and time.monotonic() < deadline:
        time.sleep(0.1)
    item = store.items()[0]
    assert item["uploaded_at"] is not None and _FakeCentral.cut_done
    with db.tx() as tx:
        ctype, data = evidence_files.content(tx, "e1", item["id"])
    assert ctype == "image/jpeg" and hashlib.sha256(data).hexdigest() == item["sha256"]
    store.close()
    server.shutdown()
    db.close()


class _ConflictingCentral(_FakeCentral):
    """Answers a refused chunk as central's API does (409 with the reason); 500 after 40 PUTs, so an upload
    that would never stop on its own ends."""

    puts = 0

    def do_PUT(self) -> None:
        type(self).puts += 1
        if type(self).puts > 40:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            super().do_PUT()
        except evidence_files.Conflict as exc:
            raw = json.dumps({"error": str(exc)}).encode()
            self.send_response(409)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)


def _serve(handler: type[_FakeCentral], tmp_path: Path) -> tuple[Database, ThreadingHTTPServer, EvidenceUploader]:
    """Central's evidence store behind `handler` on a free port, and an uploader (not started) aimed at it."""
    db = Database(f"sqlite:///{tmp_path / 'central.db'}")
    db.migrate()
    handler.db = db
    handler.cut_done = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    central = config(tmp_path).central
    assert central is not None
    link = central.model_copy(update={"url": f"http://127.0.0.1:{server.server_port}"})
    return db, server, EvidenceUploader(CentralClient(link), "e1", 1 << 20)


def test_a_conflict_that_asking_again_cannot_resolve_fails_the_upload_at_once(tmp_path):
    """Central holds part of a file of another size under this id: HEAD gives the same offset each time,
    so the 409 repeats; the upload fails (the uploader's backoff takes over) instead of spinning."""
    db, server, uploader = _serve(_ConflictingCentral, tmp_path)
    store = EvidenceStore(config(tmp_path, frames_after=0))
    store.codec = None
    store.on_alert(event("new", frame(3, (120, 160))), "cam", "e1")
    (item,) = wait_items(store, 1)  # no frames buffered: a snapshot and no clip
    meta = evidence_files.Meta.parse(json.dumps({**item, "meta": {}}))
    with db.tx() as tx:  # an earlier, different file under the same id
        evidence_files.put_chunk(tx, "e1", item["id"], (0, 10, item["size"] + 5), b"x" * 10, meta, time.time())
    uploader.store = store
    try:
        with pytest.raises(OSError, match="409"):
            uploader.upload(item)
        assert _ConflictingCentral.puts <= 2
    finally:
        store.close()
        server.shutdown()
        db.close()


def test_evidence_that_cannot_be_written_is_logged_with_the_alert_and_the_reason(tmp_path, caplog):
    """The folder vanished (an unmounted card): the write fails on the worker thread and says so."""
    store = EvidenceStore(config(tmp_path, frames_after=0))
    store.codec = None
    store.observe("cam", frame(1), 99.0)
    moved = tmp_path / "moved"
    store.dir.rename(moved)  # the index keeps its open file; new files have nowhere to go
    with caplog.at_level(logging.ERROR, logger="hazardwatch.edge.evidence.store"):
        store.on_alert(event("new", frame(2)), "cam", "e1")
        store.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("snapshot" in m and "alert0123456789abcdef" in m and "No such file" in m for m in errors), errors
    assert any("clip" in m and "alert0123456789abcdef" in m for m in errors), errors
    assert list(moved.glob("*.tmp")) == []


class _PickyCentral(_FakeCentral):
    """Refuses one file for good (400, as central answers a meta it cannot accept)."""

    refuse: frozenset[str] = frozenset()

    def do_PUT(self) -> None:
        if self._ident()[1] in self.refuse:
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_PUT()


def test_a_file_central_refuses_or_that_is_gone_does_not_hold_back_the_others(tmp_path, caplog):
    """Unsent evidence is never deleted, so one file stuck at the head of the queue for good would keep
    every later one from central and, once the budget is full, keep new evidence from being saved."""
    db, server, uploader = _serve(_PickyCentral, tmp_path)
    store = EvidenceStore(config(tmp_path, frames_after=0))
    store.codec = None
    for k in range(3):
        store.on_alert(event("new", frame(k, (120, 160)), at=100.0 + k), "cam", "e1")
    gone, refused, fine = wait_items(store, 3)
    (store.dir / gone["path"]).unlink()  # someone cleaned the card by hand
    _PickyCentral.refuse = frozenset({refused["id"]})
    try:
        with caplog.at_level(logging.WARNING, logger="hazardwatch.edge.evidence.uploader"):
            uploader.attach(store)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                unsent = {i["id"] for i in store.items(unsent_only=True)}
                if fine["id"] not in unsent and gone["id"] not in {i["id"] for i in store.items()}:
                    break
                time.sleep(0.05)
        assert {i["id"] for i in store.items(unsent_only=True)} == {refused["id"]}  # kept, tried again later
        messages = [r.getMessage() for r in caplog.records]
        assert any(gone["id"] in m and "missing" in m for m in messages), messages
        assert any(refused["id"] in m and "400" in m for m in messages), messages
    finally:
        uploader.stop()  # attached by hand, so the store does not own it: its thread must end before the index closes
        store.close()
        server.shutdown()
        db.close()
