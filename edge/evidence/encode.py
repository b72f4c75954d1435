"""Clip encoders: MP4 when this PyAV build has an encoder, else an uncompressed tar of JPEGs.

Both give one file, so upload and retention treat them alike.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import cv2
import numpy as np

MP4_CODECS = ("h264", "libx264", "mpeg4")


def pick_codec() -> str | None:
    """The first MP4 video encoder this PyAV build has, or None (then clips are JPEG tars)."""
    try:
        import av
    except ImportError:
        return None
    available = av.codecs_available
    for name in MP4_CODECS:
        if name in available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:  # listed but unusable (no encoder in this build)
                continue
    return None


def encode_mp4(frames: list[np.ndarray], path: Path, fps: float, codec: str) -> tuple[int, int]:
    """Write BGR frames (resized to the first frame's even size) to an MP4 file; its (width, height)."""
    from fractions import Fraction

    import av

    h, w = frames[0].shape[:2]
    w, h = w - w % 2, h - h % 2
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        assert isinstance(stream, av.video.stream.VideoStream)  # a video codec gives a video stream
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for img in frames:
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return w, h


def encode_jpeg_tar(frames: list[tuple[float, np.ndarray]], path: Path, quality: int = 85) -> None:
    """The fallback clip: one uncompressed tar of `frame-NNN-<ms>.jpg` files (JPEG is the compression)."""
    with tarfile.open(path, "w") as tar:
        for k, (at, img) in enumerate(frames):
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                continue
            info = tarfile.TarInfo(f"frame-{k:03d}-{int(at * 1000)}.jpg")
            info.size = len(buf)
            info.mtime = int(at)
            tar.addfile(info, io.BytesIO(buf.tobytes()))
