"""Keep one camera stream open on a thread and hold only its latest frame.

Why a thread and a single slot, not a queue: a reader that falls behind a 30 fps stream drifts
further from live on every read (measured 7.8 s after 8 one-second reads); consuming continuously and
overwriting one slot keeps `latest()` fresh whatever the caller's pace, and costs no memory growth.
Why backoff with jitter: after a storm or a network cut many cameras come back at once; spreading
the reconnects keeps the edge box and the cameras' RTSP servers from a thundering herd.
"""

from __future__ import annotations

import logging
import random
import threading

from hazardwatch.edge.config import BackoffConfig

from .base import CapturedFrame, FrameSource, SourceError

log = logging.getLogger(__name__)


class PersistentReader:
    """Runs `source.stream(keyframes_only)` on a daemon thread, reconnecting with backoff forever.

    Callers never block: `latest()` returns whatever frame arrived last (or None). `last_error` keeps
    the most recent failure text even after a reconnect succeeds; `connected` says whether frames are
    flowing now.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        keyframes_only: bool = True,
        backoff: BackoffConfig | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        self.source = source
        self.keyframes_only = keyframes_only
        self.backoff = backoff or BackoffConfig()
        self._rng = rng or random.Random()
        self._name = name or f"reader:{source.safe_url}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: CapturedFrame | None = None
        self._frames_total = 0
        self._last_error: str | None = None
        self._connected = False
        self._reconnects = 0

    # ------------------------------------------------------------------ state

    def latest(self) -> CapturedFrame | None:
        """The newest frame, or None before the first one."""
        with self._lock:
            return self._latest

    @property
    def frames_total(self) -> int:
        """Frames received since start(), across reconnects."""
        with self._lock:
            return self._frames_total

    @property
    def last_error(self) -> str | None:
        """Text of the most recent failure (kept after recovery, for health reports)."""
        with self._lock:
            return self._last_error

    @property
    def connected(self) -> bool:
        """True from the first frame of a connection until that connection fails."""
        with self._lock:
            return self._connected

    @property
    def reconnects(self) -> int:
        """How many times the stream was reopened after a failure or an end."""
        with self._lock:
            return self._reconnects

    @property
    def running(self) -> bool:
        """True while the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the reader thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to stop and wait up to `timeout`; True if it has ended.

        Returns promptly during a backoff sleep (an Event wait). A read blocked inside the source
        ends by itself within the source's read timeout; the thread is a daemon, so it never holds
        up interpreter exit.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s: still in the source after %.1f s; it ends on its own", self._name, timeout)
            return False
        with self._lock:
            self._connected = False
        return True

    # ----------------------------------------------------------------- thread

    def _delay(self, base: float) -> float:
        jitter = self.backoff.jitter
        return max(0.0, base * (1.0 + self._rng.uniform(-jitter, jitter)))

    def _run(self) -> None:
        base = self.backoff.initial_s
        while not self._stop.is_set():
            error, got_frames = self._read_once()
            if self._stop.is_set():
                break
            if got_frames:  # this connection worked: start the backoff over
                base = self.backoff.initial_s
            with self._lock:
                self._connected = False
                self._last_error = error
            delay = self._delay(base)
            log.info("%s: %s; reconnecting in %.1f s", self._name, error, delay)
            if self._stop.wait(delay):
                break
            base = min(base * 2.0, self.backoff.max_s)
            with self._lock:
                self._reconnects += 1

    def _read_once(self) -> tuple[str, bool]:
        """Consume one connection until it fails; return (why it ended, whether it gave frames)."""
        got_frames = False
        frames = None
        try:
            frames = self.source.stream(self.keyframes_only)
            for frame in frames:
                with self._lock:
                    self._latest = frame
                    self._frames_total += 1
                    self._connected = True
                got_frames = True
                if self._stop.is_set():
                    return "stopped", got_frames
        except SourceError as exc:
            return str(exc), got_frames
        except Exception as exc:  # a bug in a source must not kill the camera for good
            log.exception("%s: unexpected error from the source", self._name)
            return f"{type(exc).__name__}: {exc}", got_frames
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # a generator source closes its container in its own finally
        return f"{self.source.safe_url}: stream ended", got_frames
