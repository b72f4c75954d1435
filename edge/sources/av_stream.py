"""RTSP cameras and local video files through PyAV (FFmpeg), with key-frame-only decoding.

Why PyAV rather than cv2.VideoCapture: it exposes `skip_frame="NONKEY"`, so a patrol visit or a
persistent key-frame stream decodes about one frame per GOP instead of every frame (about 2.5 % of a
core instead of 15-21 % for 1080p30), and its open/read timeouts bound a stalled camera.

A local file is replayed as if it were a live camera: `snapshot()` returns the frame at
`(monotonic() - t0) % duration` and `stream()` is paced to the native frame rate and loops at EOF, so
the patrol and detection code cannot tell replay from a real feed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlsplit

import av
import av.container
import av.video.frame
import av.video.stream
import numpy as np

from .base import CapturedFrame, FrameSource, SourceError

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps")

_Container = av.container.InputContainer
_VStream = av.video.stream.VideoStream

# Errors PyAV raises for network, container and codec trouble (FFmpegError covers av.error.*).
_AV_ERRORS = (av.FFmpegError, OSError, EOFError, ValueError)


def local_path(url: str) -> Path | None:
    """The filesystem path of a `file://` URL or a bare path; None for network URLs."""
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        return Path(unquote(parts.netloc + parts.path))
    return None


class AvStreamSource(FrameSource):
    """An RTSP(S) camera or a local video file, read with PyAV.

    `first_frame_timeout_s` bounds how long a visit waits for a key frame after connecting, because a
    camera that sends packets but never a decodable key frame is not caught by the read timeout.
    """

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        *,
        first_frame_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(url, open_timeout_s, read_timeout_s)
        self.first_frame_timeout_s = first_frame_timeout_s
        self.path = local_path(url)
        self.live = self.path is None
        if self.live and urlsplit(url).scheme.lower() not in LIVE_SCHEMES:
            raise SourceError(f"{self.safe_url}: AvStreamSource reads rtsp://, rtsps:// or local files")
        # Replay clock: a file "started playing" when the source was made.
        self.t0 = time.monotonic()

    # ----------------------------------------------------------------- helpers

    def _reason(self, exc: BaseException, timeout_s: float) -> str:
        """A short error text without credentials (FFmpeg puts the full URL in its messages)."""
        if isinstance(exc, av.error.ExitError | TimeoutError):  # PyAV's interrupt: "Immediate exit requested"
            return f"timed out (no answer within {timeout_s:g} s)"
        if isinstance(exc, av.FFmpegError) and exc.strerror:
            return exc.strerror  # FFmpeg's message without the URL it appends
        text = str(exc) or type(exc).__name__
        return text.replace(self.url, self.safe_url) if self.url != self.safe_url else text

    def _fail(self, what: str, exc: BaseException | None = None) -> SourceError:
        timeout_s = self.open_timeout_s if what == "cannot open" else self.read_timeout_s
        reason = what if exc is None else f"{what}: {self._reason(exc, timeout_s)}"
        return SourceError(f"{self.safe_url}: {reason}")

    def open_stream(self) -> tuple[_Container, _VStream]:
        """Open the container and pick its first video stream; raises SourceError."""
        if self.live:
            options = {
                "rtsp_transport": "tcp",  # UDP drops packets behind NAT/firewalls and on busy links
                # FFmpeg's own socket I/O timeout (microseconds), a second guard beside PyAV's interrupt.
                "timeout": str(int(self.read_timeout_s * 1_000_000)),
                # Stream probing: FFmpeg's defaults held open() for 2.8 s on a 10 fps loopback stream;
                # the SDP already names the codec and the decoder reads SPS/PPS in-band, so probe one
                # packet (measured 0.11 s). The probed packet is kept and decoded, not thrown away.
                "probesize": "32",
                "analyzeduration": "100000",
            }
            target = self.url
        else:
            assert self.path is not None
            if not self.path.is_file():
                raise SourceError(f"{self.url}: no such video file")
            options = {}
            target = str(self.path)
        try:
            container = av.open(target, options=options, timeout=(self.open_timeout_s, self.read_timeout_s))
        except _AV_ERRORS as exc:
            raise self._fail("cannot open", exc) from None
        try:
            if not container.streams.video:
                raise self._fail("no video stream")
            stream = container.streams.video[0]
        except BaseException:
            container.close()
            raise
        return container, stream

    def duration_s(self) -> float:
        """Length of a local file in seconds (replay wraps around it); raises SourceError."""
        container, stream = self.open_stream()
        try:
            return _duration(container, stream)
        finally:
            container.close()

    # ----------------------------------------------------------------- snapshot

    def snapshot(self) -> CapturedFrame:
        """Connect, decode the first key frame (the fresh one), disconnect."""
        c0 = time.thread_time()
        container, stream = self.open_stream()
        try:
            stream.codec_context.skip_frame = "NONKEY" if self.live else "DEFAULT"
            # One decode thread: FFmpeg's slice threads cost a start-up per visit and hide their CPU
            # from thread_time(), so the decode figures would under-count (bench/edge_patrol.py).
            stream.codec_context.thread_count = 1
            if self.live:
                connect_cpu = time.thread_time() - c0
                d0 = time.thread_time()
                image = self._first_live_frame(container, stream)
            else:
                target = self._replay_position(container, stream)
                connect_cpu = time.thread_time() - c0
                d0 = time.thread_time()
                image = self._file_frame_at(container, stream, target)
            decode_cpu = time.thread_time() - d0
        except _AV_ERRORS as exc:
            raise self._fail("read failed", exc) from None
        finally:
            container.close()
        return CapturedFrame(image=image, captured_at=time.time(), connect_cpu_s=connect_cpu, decode_cpu_s=decode_cpu)

    def _first_live_frame(self, container: _Container, stream: _VStream) -> np.ndarray:
        deadline = time.monotonic() + self.first_frame_timeout_s
        for packet in container.demux(stream):
            for frame in _decode(packet):
                return frame.to_ndarray(format="bgr24")
            if time.monotonic() > deadline:
                raise self._fail(f"no key frame within {self.first_frame_timeout_s:g} s")
        raise self._fail("stream ended before a key frame")

    def _replay_position(self, container: _Container, stream: _VStream) -> float:
        """Seek to the key frame before the wall-clock replay position; return that position (s)."""
        duration = _duration(container, stream)
        start = _start_s(stream)
        pos = start + (time.monotonic() - self.t0) % duration if duration > 0 else start
        assert stream.time_base is not None
        container.seek(int(pos / stream.time_base), stream=stream, backward=True, any_frame=False)
        return pos

    def _file_frame_at(self, container: _Container, stream: _VStream, target: float) -> np.ndarray:
        """Decode forward from the key frame to the frame shown at `target` seconds."""
        last = None
        for frame in container.decode(stream):
            if last is not None and frame.time is not None and frame.time > target:
                break
            last = frame
        if last is None:
            raise self._fail("no decodable frame")
        return last.to_ndarray(format="bgr24")

    # ----------------------------------------------------------------- stream

    def stream(self, keyframes_only: bool) -> Iterator[CapturedFrame]:
        """Open once and yield frames until failure; files are paced in real time and loop."""
        container, stream = self.open_stream()
        try:
            stream.codec_context.skip_frame = "NONKEY" if keyframes_only else "DEFAULT"
            if keyframes_only:
                stream.codec_context.thread_count = 1  # a key frame a second needs no thread pool
            if self.live:
                yield from self._live_frames(container, stream)
            else:
                yield from self._file_frames(container, stream)
        except _AV_ERRORS as exc:
            raise self._fail("stream failed", exc) from None
        finally:
            container.close()

    def _live_frames(self, container: _Container, stream: _VStream) -> Iterator[CapturedFrame]:
        # Reading as fast as packets arrive keeps the stream live: no buffer builds up behind us.
        last_frame = time.monotonic()
        while True:
            d0 = time.thread_time()
            got = None
            for packet in container.demux(stream):
                if packet.size == 0:  # flush packet at EOF
                    continue
                frames = _decode(packet)
                if frames:
                    got = frames[-1]
                    break
                if time.monotonic() - last_frame > self.first_frame_timeout_s:
                    raise self._fail(f"no frame for {self.first_frame_timeout_s:g} s")
            if got is None:
                raise self._fail("stream ended")
            image = got.to_ndarray(format="bgr24")
            last_frame = time.monotonic()
            yield CapturedFrame(image=image, captured_at=time.time(), decode_cpu_s=time.thread_time() - d0)

    def _file_frames(self, container: _Container, stream: _VStream) -> Iterator[CapturedFrame]:
        duration = _duration(container, stream)
        start = _start_s(stream)
        wall0 = time.monotonic()
        loop_offset = 0.0
        while True:
            d0 = time.thread_time()
            produced = False
            for frame in container.decode(stream):
                produced = True
                image = frame.to_ndarray(format="bgr24")
                cpu = time.thread_time() - d0
                t = (frame.time if frame.time is not None else start) - start
                delay = wall0 + loop_offset + t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                yield CapturedFrame(image=image, captured_at=time.time(), decode_cpu_s=cpu)
                d0 = time.thread_time()
            if not produced:
                raise self._fail("no decodable frame")
            if duration <= 0:
                raise self._fail("unknown duration, cannot loop")
            loop_offset += duration
            container.seek(0, stream=stream, backward=True, any_frame=False)
            # A seek flushes the decoder; keep the key-frame setting of this stream.


def _decode(packet: av.Packet) -> list[av.video.frame.VideoFrame]:  # type: ignore[type-arg]
    """Decode one packet; a corrupt packet (lost data at join time) yields nothing rather than failing."""
    try:
        return list(packet.decode())
    except av.InvalidDataError:
        return []


def _start_s(stream: av.video.stream.VideoStream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _duration(container: _Container, stream: _VStream) -> float:
    """Stream duration in seconds, falling back to the container's, then to frames / rate."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    rate = stream.average_rate or Fraction(0)
    if stream.frames and rate:
        return float(stream.frames / rate)
    return 0.0
