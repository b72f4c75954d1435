"""Camera adapters: RTSP and video files (PyAV), HTTP snapshots, image folders, and a persistent reader.

Import from here; `open_source` picks the adapter for a camera's config.
"""

from .base import CapturedFrame, FrameSource, SourceError
from .factory import open_source
from .persistent import PersistentReader

__all__ = ["CapturedFrame", "FrameSource", "PersistentReader", "SourceError", "open_source"]
