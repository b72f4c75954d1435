"""A folder of still images played as a camera, one image per visit, in name order.

Why: it makes replay deterministic (visit N always sees image N mod count), which is what tests and
offline evaluation on labelled frames need; wall-clock replay is what video files are for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from .base import CapturedFrame, FrameSource, SourceError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})


class ImageFolderSource(FrameSource):
    """Each `snapshot()` returns the next image (looping); `stream()` yields them at `fps`."""

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        *,
        fps: float = 2.0,
    ) -> None:
        super().__init__(url, open_timeout_s, read_timeout_s)
        if fps <= 0:
            raise ValueError("fps must be positive")
        parts = urlsplit(url)
        is_file_url = "://" in url and parts.scheme.lower() == "file"
        self.folder = Path(unquote(parts.netloc + parts.path)) if is_file_url else Path(url)
        self.fps = fps
        self._next = 0
        self._lock = threading.Lock()  # snapshot() may be called from several worker threads

    def files(self) -> list[Path]:
        """The images in name order, listed afresh so files added while running are picked up."""
        try:
            entries = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise SourceError(f"{self.folder}: cannot list folder: {exc.strerror or exc}") from None
        files = [p for p in entries if p.is_file()]
        if not files:
            raise SourceError(f"{self.folder}: no images (jpg, jpeg, png, tif, tiff)")
        return files

    def snapshot(self) -> CapturedFrame:
        """Return the next image in name order, wrapping around at the end."""
        files = self.files()
        with self._lock:
            path = files[self._next % len(files)]
            self._next = (self._next + 1) % len(files)
        return self._read(path)

    def _read(self, path: Path) -> CapturedFrame:
        d0 = time.thread_time()
        try:
            # np.fromfile + imdecode rather than imread: works with non-ASCII paths everywhere.
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise SourceError(f"{path}: not a readable image")
        return CapturedFrame(image=image, captured_at=time.time(), decode_cpu_s=time.thread_time() - d0)

    def stream(self, keyframes_only: bool) -> Iterator[CapturedFrame]:
        """Yield the images in order at `fps`, looping (every still is a "key frame")."""
        period = 1.0 / self.fps
        due = time.monotonic()
        while True:
            yield self.snapshot()
            due += period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                due = time.monotonic()  # fell behind: do not burst to catch up
