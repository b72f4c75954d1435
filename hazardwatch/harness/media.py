"""Test media: locate ../shared/data and turn videos or images into RTSP-friendly H.264 clips.

Why re-encode: the RTSP server relays files without re-encoding, so clips must already suit streaming:
no B-frames, a fixed key-frame interval (a client joining mid-stream waits at most one GOP), no audio,
yuv420p, and a steady frame rate.  Results are cached by source + parameters because encoding is the
slow part of test setup.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FFMPEG = os.environ.get("HAZARDWATCH_FFMPEG", "/usr/bin/ffmpeg")
REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """The shared data folder (``<repo>/../shared/data``, or $HAZARDWATCH_SHARED_DATA); None when absent."""
    env = os.environ.get("HAZARDWATCH_SHARED_DATA")
    path = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"
    return path.resolve() if path.is_dir() else None


def ffmpeg_binary() -> str | None:
    """The ffmpeg executable, or None (callers skip tests that need it)."""
    if os.access(FFMPEG, os.X_OK):
        return FFMPEG
    return shutil.which("ffmpeg")


def x264_args(fps: int, gop: int) -> list[str]:
    """Encoder flags shared by every clip: streaming-friendly H.264 without B-frames."""
    return [
        "-an",
        "-c:v", "libx264",
        "-preset", "veryfast",
        "-tune", "zerolatency",
        "-bf", "0",
        "-g", str(gop),
        "-keyint_min", str(gop),
        "-sc_threshold", "0",
        "-r", str(fps),
        "-pix_fmt", "yuv420p",
        "-movflags", "+faststart",
    ]  # fmt: skip


def run_ffmpeg(args: list[str], out: Path, stdin: bytes | None = None) -> Path:
    """Run ffmpeg into a temp name and rename, so an interrupted run never leaves a half clip in the cache.

    `stdin` feeds ffmpeg's standard input (raw frames read as `-i pipe:0`).
    """
    ffmpeg = ffmpeg_binary()
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg not found (apt-get install ffmpeg)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")
    try:
        res = subprocess.run(
            [ffmpeg, "-y", "-hide_banner", "-loglevel", "error", *args, str(tmp)],
            input=stdin,
            capture_output=True,
            timeout=600,
        )
        if res.returncode != 0 or not tmp.exists():
            err = res.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"ffmpeg failed ({res.returncode}): {err[-2000:]}")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _scale_filter(width: int | None) -> list[str]:
    """Scale to a width keeping aspect (even height, as yuv420p needs); nothing when width is None."""
    return ["-vf", f"scale={width}:-2"] if width else []


def prepare_clip(
    src: Path,
    cache_dir: Path,
    *,
    fps: int = 10,
    gop: int = 10,
    width: int | None = None,
    duration: float | None = None,
    start: float = 0.0,
) -> Path:
    """Re-encode a video for streaming (see module doc); returns the cached clip when one already exists.

    ``duration``/``start`` cut a piece (seconds) so tests that need a short clip stay fast.
    """
    src = Path(src).resolve()
    if not src.is_file():
        raise FileNotFoundError(src)
    stat = src.stat()
    key = json.dumps([str(src), stat.st_size, int(stat.st_mtime), fps, gop, width, duration, start], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"{src.stem}-{fps}fps-g{gop}-{digest}.mp4"
    if out.is_file() and out.stat().st_size > 0:
        return out
    args: list[str] = []
    if start:
        args += ["-ss", f"{start:.3f}"]
    args += ["-i", str(src)]
    if duration is not None:
        args += ["-t", f"{duration:.3f}"]
    args += _scale_filter(width) + x264_args(fps, gop)
    return run_ffmpeg(args, out)


def frames_to_clip(
    frames: Sequence[np.ndarray] | Sequence[Path | str],
    out: Path,
    *,
    fps: int = 10,
    gop: int = 10,
    repeat: int = 1,
    hold: int = 1,
    width: int | None = None,
) -> Path:
    """Build a clip from BGR uint8 arrays (all one size) or image files (e.g. HPWREN JPEGs).

    Each frame is shown ``hold`` times and the whole sequence ``repeat`` times, so a handful of stills
    can make a clip long enough to stream.  Image files are scaled to the first one's size.
    """
    if not frames:
        raise ValueError("no frames")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frames[0], np.ndarray):
        arrays = [np.ascontiguousarray(f) for f in frames]
        h, w = arrays[0].shape[:2]
        if any(a.shape != arrays[0].shape or a.dtype != np.uint8 for a in arrays):
            raise ValueError("all frames must be uint8 arrays of one shape")
        if arrays[0].ndim == 2:
            arrays = [np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
        raw = b"".join(a.tobytes() for a in arrays for _ in range(hold))
        args = [
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
        ]  # fmt: skip
        data = raw * repeat
    else:
        paths = [Path(p).resolve() for p in frames]  # type: ignore[arg-type]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(p)
        listing = out.with_name(f".{out.stem}.{os.getpid()}.txt")
        frame_s = hold / fps
        lines = [f"file '{p.as_posix()}'\nduration {frame_s:.6f}\n" for p in paths] * repeat
        listing.write_text("".join(lines))
        first = _probe_size(paths[0])
        scale = f"scale={width}:-2" if width else f"scale={first[0]}:{first[1]}"
        args = ["-f", "concat", "-safe", "0", "-i", str(listing), "-vf", f"{scale},setsar=1"]
        data = None
    args += _scale_filter(width) if data is not None else []
    args += x264_args(fps, gop)
    try:
        return run_ffmpeg(args, out, data)
    finally:
        if data is None:
            listing.unlink(missing_ok=True)


def _probe_size(image: Path) -> tuple[int, int]:
    """Width and height of an image, made even (yuv420p needs even sizes)."""
    import cv2  # local: only image inputs need it

    img = cv2.imread(str(image))
    if img is None:
        raise ValueError(f"cannot read image {image}")
    h, w = img.shape[:2]
    return w - w % 2, h - h % 2


def probe_clip(path: Path) -> dict[str, float | int]:
    """Width, height, fps, frame count and duration of a clip (via PyAV) for assertions."""
    import av  # local: keeps this module importable without the edge extras

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate) if s.average_rate else 0.0
        frames = s.frames or sum(1 for _ in c.demux(s) if _.size)
        duration = float(c.duration / 1_000_000) if c.duration else (frames / fps if fps else 0.0)
        return {"width": s.codec_context.width, "height": s.codec_context.height, "fps": fps,
                "frames": frames, "duration": duration}  # fmt: skip
