"""Cameras that serve a JPEG snapshot over HTTP(S) (most IP cameras have such an endpoint).

Why: a snapshot URL is the cheapest patrol visit there is (no RTSP session, no waiting for a key
frame, no video decode), so it is preferred where a camera offers one.  Blocking urllib keeps the
source dependency-free and fits the FrameSource contract (called from a worker thread).
"""

from __future__ import annotations

import base64
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from .base import CapturedFrame, FrameSource, SourceError

MAX_BYTES = 10 * 1024 * 1024  # no camera snapshot is this big; a larger body is a wrong URL or an attack
_CHUNK = 64 * 1024


class HttpSnapshotSource(FrameSource):
    """GET a still image per visit; `stream()` polls every `poll_interval_s`."""

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        *,
        poll_interval_s: float = 1.0,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        super().__init__(url, open_timeout_s, read_timeout_s)
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise SourceError(f"{self.safe_url}: HttpSnapshotSource reads http:// or https:// URLs")
        self.poll_interval_s = poll_interval_s
        self.max_bytes = max_bytes
        # urllib cannot take user:password in the URL: strip it and send it as a Basic header instead.
        netloc = parts.hostname or ""
        if ":" in netloc:  # IPv6 literal
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        self._request_url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self._auth: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    def _fail(self, reason: str) -> SourceError:
        return SourceError(f"{self.safe_url}: {reason}")

    def _fetch(self) -> bytes:
        """GET the body with a size cap and an overall deadline (a trickling server cannot hold us)."""
        req = urllib.request.Request(self._request_url, headers={"Accept": "image/*"})
        if self._auth:
            req.add_header("Authorization", self._auth)
        deadline = time.monotonic() + self.open_timeout_s + self.read_timeout_s
        try:
            with urllib.request.urlopen(req, timeout=self.open_timeout_s) as resp:
                if resp.status != 200:
                    raise self._fail(f"HTTP {resp.status}")
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > self.max_bytes:
                    raise self._fail(f"image too large ({int(length)} bytes > {self.max_bytes})")
                chunks: list[bytes] = []
                size = 0
                while True:
                    if time.monotonic() > deadline:
                        raise self._fail("timed out reading the image")
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._fail(f"image too large (> {self.max_bytes} bytes)")
                    chunks.append(chunk)
        except urllib.error.HTTPError as exc:
            raise self._fail(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            text = "timed out" if isinstance(reason, TimeoutError) else str(reason)
            raise self._fail(f"cannot connect: {text}") from None
        except TimeoutError:
            raise self._fail("timed out") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}") from None
        return b"".join(chunks)

    def snapshot(self) -> CapturedFrame:
        """One GET, decoded to BGR; raises SourceError on HTTP errors, timeouts and non-images."""
        c0 = time.thread_time()
        body = self._fetch()
        connect_cpu = time.thread_time() - c0
        d0 = time.thread_time()
        image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR) if body else None
        decode_cpu = time.thread_time() - d0
        if image is None:
            raise self._fail(f"response is not a decodable image ({len(body)} bytes)")
        return CapturedFrame(image=image, captured_at=time.time(), connect_cpu_s=connect_cpu, decode_cpu_s=decode_cpu)

    def stream(self, keyframes_only: bool) -> Iterator[CapturedFrame]:
        """Poll the snapshot URL at `poll_interval_s` (keyframes_only has no meaning for stills)."""
        while True:
            started = time.monotonic()
            yield self.snapshot()
            remaining = self.poll_interval_s - (time.monotonic() - started)
            if remaining > 0:
                time.sleep(remaining)
