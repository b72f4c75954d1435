"""Recent frames of each camera, kept for the clip around an alert: bounded by count and bytes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class _Buffered:
    at: float
    frame: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.frame.nbytes)


class FrameRing:
    """Recent frames of one camera, bounded by count and bytes (oldest dropped first)."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._items: deque[_Buffered] = deque()
        self.nbytes = 0

    def add(self, at: float, frame: np.ndarray) -> None:
        item = _Buffered(at, frame)
        self._items.append(item)
        self.nbytes += item.nbytes
        while self._items and (len(self._items) > self.max_frames or self.nbytes > self.max_bytes):
            self.nbytes -= self._items.popleft().nbytes

    def frames(self) -> list[tuple[float, np.ndarray]]:
        return [(b.at, b.frame) for b in self._items]

    def __len__(self) -> int:
        return len(self._items)
