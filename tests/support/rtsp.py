"""Drive tests/support/rtsp_server.py from the venv: it must run under Debian's python3 (GstRtspServer)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import IO

from .ports import free_port, wait_port_closed

HOST = "127.0.0.1"
SYSTEM_PYTHON = os.environ.get("HAZARDWATCH_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")


@cache
def gst_rtsp_unavailable_reason() -> str | None:
    """None when the system python can import GstRtspServer, else why not (used to skip tests clearly)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found (needed for GStreamer's RTSP server)"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        res = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} cannot probe GstRtspServer: {exc}"
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        return (
            f"{SYSTEM_PYTHON} cannot import GstRtspServer ({last}); "
            "run .ci/install-system.sh (python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-rtsp)"
        )
    return None


class RtspServer:
    """Looping loopback RTSP server for MP4 files; restart() keeps the port so clients can reconnect."""

    def __init__(
        self,
        mounts: Mapping[str, Path | str],
        port: int | None = None,
        *,
        start_timeout: float = 20.0,
    ) -> None:
        if not mounts:
            raise ValueError("at least one mount is needed")
        self.mounts = {("/" + k.lstrip("/")): Path(v) for k, v in mounts.items()}
        for path in self.mounts.values():
            if not path.is_file():
                raise FileNotFoundError(path)
        self._port = port or free_port()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self._stderr_tail = ""
        self._stderr: IO[bytes] | None = None

    @property
    def port(self) -> int:
        """TCP port on 127.0.0.1, stable across restart()."""
        return self._port

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def url(self, mount: str) -> str:
        """rtsp:// URL of a mount (with or without its leading slash)."""
        name = "/" + mount.lstrip("/")
        if name not in self.mounts:
            raise KeyError(f"no mount {name}; have {sorted(self.mounts)}")
        return f"rtsp://{HOST}:{self._port}{name}"

    def start(self) -> RtspServer:
        """Launch the server and wait for its READY line (raises with its stderr on failure)."""
        if self.running:
            return self
        wait_port_closed(HOST, self._port, timeout=self.start_timeout)
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self._port)]
        for name, path in self.mounts.items():
            cmd += ["--mount", f"{name}={path.resolve()}"]
        # stderr goes to a file, not a pipe: a chatty GStreamer must never block on a full pipe.
        self._stderr = tempfile.TemporaryFile(prefix="hw-rtsp-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                line = self.proc.stdout.readline()
                if line.startswith("READY"):
                    return self
                if line == "":  # EOF: the process died
                    break
        self.kill()
        raise RuntimeError(f"RTSP server did not become ready on port {self._port}:\n{self._stderr_tail}")

    def log_text(self) -> str:
        """The server's stderr so far (or of the last process, once it has exited)."""
        if self._stderr is None:
            return self._stderr_tail
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _reap(self) -> None:
        """Collect the dead process's stderr for diagnostics and forget it."""
        if self.proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._stderr is not None:
            self._stderr.seek(0)
            self._stderr_tail = self._stderr.read().decode(errors="replace")[-4000:]
            self._stderr.close()
            self._stderr = None
        self.proc = None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (the server quits its main loop and exits 0)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: simulates a camera that drops off the network mid-stream."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def restart(self, *, hard: bool = False) -> RtspServer:
        """Stop (or kill when hard) and serve the same mounts on the same port again."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RtspServer(port={self._port}, mounts={sorted(self.mounts)}, running={self.running})"
