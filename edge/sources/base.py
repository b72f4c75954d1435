"""Camera adapters behind one base class.

A `FrameSource` is blocking and is called from a worker thread. `snapshot()` is the patrol visit:
connect, take one fresh frame, disconnect. `PersistentReader` (see persistent.py) keeps a stream
open on its own thread and keeps only the latest frame, for cameras watched continuously.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


class SourceError(Exception):
    """A camera could not deliver a frame; the text says which source and why (no credentials)."""


@dataclass(frozen=True)
class CapturedFrame:
    """One decoded camera frame and what it cost to get (not an evidence frame, not a clip frame)."""

    image: np.ndarray  # BGR uint8, H x W x 3
    captured_at: float  # Unix time the frame was decoded here
    connect_cpu_s: float = 0.0  # CPU seconds this thread spent connecting (snapshot visits)
    decode_cpu_s: float = 0.0  # CPU seconds this thread spent demuxing and decoding


class FrameSource(ABC):
    def __init__(self, url: str, open_timeout_s: float = 5.0, read_timeout_s: float = 5.0) -> None:
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s

    @property
    def safe_url(self) -> str:
        """The URL without user:password, for logs and status messages."""
        if "@" in self.url and "://" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://{rest.split('@', 1)[1]}"
        return self.url

    @abstractmethod
    def snapshot(self) -> CapturedFrame:
        """Connect, return one fresh frame, disconnect. Raises SourceError."""

    @abstractmethod
    def stream(self, keyframes_only: bool) -> Iterator[CapturedFrame]:
        """Open the source and yield frames until it fails (SourceError) or the caller stops."""
