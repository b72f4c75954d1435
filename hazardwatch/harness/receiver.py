"""A real HTTP receiver for delivery tests: an aiohttp server on a free loopback port, in its own thread.

Tests drive it synchronously: switch `mode` (accept, fail, throttle, timeout, reject), queue one-off modes
in `script`, stop it (connection refused: the receiver is down) and start it again on the same port. It
records every request (time, path, headers, body, what it answered) and checks the HMAC signature the
way a real receiver would, with `verify_signature`, answering 401 to a bad one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from hazardwatch.central.notify.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)
from hazardwatch.procs import free_port, wait_port

Mode = Literal["accept", "fail", "throttle", "timeout", "reject"]
MODES: tuple[Mode, ...] = ("accept", "fail", "throttle", "timeout", "reject")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and what it answered (None: the client gave up waiting)."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    mode: str
    status: int | None
    signature_ok: bool | None

    @property
    def key(self) -> str:
        return self.headers.get(IDEMPOTENCY_HEADER, "")

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Receiver:
    """Start with `start()` (or as a context manager); `url(path)` is where to point a ReceiverConfig."""

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        port: int | None = None,
        retry_after: str = "1",
        hang_s: float = 5.0,
    ) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.mode: Mode = "accept"
        self.delay_s = 0.0  # accept mode: answer after this long (a slow but healthy receiver)
        self.script: deque[Mode] = deque()  # consumed one per request before `mode` applies
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def url(self, path: str = "/hook") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def start(self) -> Receiver:
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"receiver-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise RuntimeError(f"test receiver cannot listen on {HOST}:{self.port}: {errors[0]}")
        wait_port(HOST, self.port)
        return self

    def stop(self) -> None:
        """Close the listening socket and open connections: clients now get 'connection refused'."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- requests ----------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        with self._lock:
            mode = self.script.popleft() if self.script else self.mode
        signature_ok = None
        if self.secret is not None:
            signature_ok = verify_signature(
                self.secret,
                request.headers.get(TIMESTAMP_HEADER),
                body,
                request.headers.get(SIGNATURE_HEADER),
            )
        headers = dict(request.headers)
        if signature_ok is False:
            status, response = 401, web.Response(status=401, text="bad signature")
        elif mode == "accept":
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status, response = 200, web.json_response({"ok": True})
        elif mode == "fail":
            status, response = 500, web.Response(status=500, text="receiver failing on purpose")
        elif mode == "throttle":
            status = 429
            response = web.Response(status=429, text="slow down", headers={"Retry-After": self.retry_after})
        elif mode == "reject":
            status, response = 400, web.Response(status=400, text="payload refused on purpose")
        else:  # timeout: hold the request longer than any client timeout in the tests
            self._record(Received(arrived, request.path, headers, body, mode, None, signature_ok))
            await asyncio.sleep(self.hang_s)
            return web.Response(status=503, text="too late")
        self._record(Received(arrived, request.path, headers, body, mode, status, signature_ok))
        return response

    def _record(self, item: Received) -> None:
        with self._lock:
            self._requests.append(item)

    @property
    def requests(self) -> list[Received]:
        """Every request so far, in arrival order (a copy: safe to read while the server runs)."""
        with self._lock:
            return list(self._requests)

    def accepted(self, path: str | None = None) -> list[Received]:
        return [r for r in self.requests if r.accepted and (path is None or r.path == path)]

    def set_mode(self, mode: Mode, *, script: list[Mode] | None = None) -> None:
        """Switch the standing mode; `script` modes are answered first, one request each."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        with self._lock:
            self.mode = mode
            self.script = deque(script or [])
