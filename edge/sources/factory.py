"""Pick the right FrameSource for a camera's `source` string.

Why one function: the worker, the CLI's probe command and tests all turn config into sources the same
way, and a missing local path should fail at startup with the path named, not at the first visit.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from hazardwatch.edge.config import CameraConfig, PatrolConfig

from .av_stream import AvStreamSource
from .base import FrameSource, SourceError
from .http_snapshot import HttpSnapshotSource
from .image_folder import ImageFolderSource


def open_source(camera: CameraConfig, patrol: PatrolConfig) -> FrameSource:
    """Build (not connect) the source: rtsp(s) and video files -> PyAV, http(s) -> snapshot GET,
    folder -> image folder. Raises SourceError for a missing path or an unsupported scheme."""
    url = camera.source
    open_s, read_s = patrol.open_timeout_s, patrol.read_timeout_s
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return AvStreamSource(url, open_timeout_s=open_s, read_timeout_s=read_s)
    if scheme in ("http", "https"):
        return HttpSnapshotSource(url, open_timeout_s=open_s, read_timeout_s=read_s)
    if scheme not in ("", "file"):
        raise SourceError(f"camera {camera.id}: unsupported source scheme {scheme!r}")
    path = Path(unquote(urlsplit(url).netloc + urlsplit(url).path)) if scheme == "file" else Path(url)
    if path.is_dir():
        return ImageFolderSource(str(path), open_timeout_s=open_s, read_timeout_s=read_s)
    if path.is_file():
        return AvStreamSource(str(path), open_timeout_s=open_s, read_timeout_s=read_s)
    raise SourceError(f"camera {camera.id}: source path {path} does not exist")
