"""Shared fixtures: private brokers, RTSP servers and prepared clips, each skipped with a clear reason.

The brokers, RTSP servers, service processes and media helpers come from hazardwatch/harness/ (shared
with the benches and built on hazardwatch/procs.py); what only the tests need lives in tests/support
(imported as ``support``: pytest puts tests/ on sys.path because tests/ has no __init__.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from hazardwatch.harness.media import REPO_ROOT, ffmpeg_binary, prepare_clip, shared_data_dir
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.harness.rtsp import RtspServer, gst_rtsp_unavailable_reason
from hazardwatch.procs import mosquitto_binary

FIRE_CLIP = Path("media-furg-fire/fire/house6.mp4")
ROAD_CLIP = Path("media-intel-road/traffic_road/car-detection.mp4")

RtspServerFactory = Callable[..., RtspServer]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips (naming the path looked for) when it is not there."""
    path = shared_data_dir()
    if path is None:
        looked = os.environ.get("HAZARDWATCH_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data"
        pytest.skip(f"shared data not found at {looked} (set HAZARDWATCH_SHARED_DATA to point elsewhere)")
    return path


@pytest.fixture(scope="session")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session-wide folder for re-encoded clips, so each source is encoded once per run."""
    return tmp_path_factory.mktemp("media-cache")


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """The ffmpeg binary; skips when missing (clips cannot be prepared)."""
    path = ffmpeg_binary()
    if path is None:
        pytest.skip("ffmpeg not found (run .ci/install-system.sh)")
    return path


def _shared_clip(shared_data: Path, media_cache: Path, rel: Path) -> Path:
    """Prepare one clip from the shared data, skipping with the exact missing path."""
    src = shared_data / rel
    if not src.is_file():
        pytest.skip(f"test video missing: {src}")
    return prepare_clip(src, media_cache)


@pytest.fixture(scope="session")
def fire_clip(shared_data: Path, media_cache: Path, ffmpeg: str) -> Path:
    """house6.mp4 (FURG fire, 426x240, 30 s) re-encoded for streaming: 10 fps, a key frame every second."""
    return _shared_clip(shared_data, media_cache, FIRE_CLIP)


@pytest.fixture(scope="session")
def road_clip(shared_data: Path, media_cache: Path, ffmpeg: str) -> Path:
    """car-detection.mp4 (Intel road, 768x432, 30 s) re-encoded for streaming like fire_clip."""
    return _shared_clip(shared_data, media_cache, ROAD_CLIP)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A private, started broker on a free loopback port (never the machine's 1883); stopped afterwards."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not found (run .ci/install-system.sh)")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def rtsp_server_factory() -> Iterator[RtspServerFactory]:
    """Call with ``{"/cam1": clip_path, ...}`` (and optional port=) to get a started RtspServer.

    Every server started through it is stopped at teardown.
    """
    reason = gst_rtsp_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    servers: list[RtspServer] = []

    def start(mounts: Mapping[str, Path | str], port: int | None = None) -> RtspServer:
        server = RtspServer(mounts, port=port)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on an embedded SQLite file and on a throwaway PostgreSQL database."""
    from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database

    if request.param == "postgres" and (reason := postgres_unavailable_reason()):
        pytest.skip(reason)
    with temporary_database(request.param, tmp_path) as url:
        yield url
