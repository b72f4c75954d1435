"""A local server run as a supervised child on a port that stays the same across restarts.

The broker and the RTSP server differ only in their command line and in how they say they are ready;
stop, kill, restart (same port, same state), cleanup and the context manager are this one class.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from hazardwatch.procs import HOST, Child, ChildError, free_port, port_open, wait_port_closed


class LocalServer:
    """`child` serves on 127.0.0.1:`port`; its files live in `workdir` (removed on close when ours)."""

    name = "server"

    def __init__(self, port: int | None, workdir: Path | None, start_timeout: float) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hw-{self.name}-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port = port or free_port()
        self.start_timeout = start_timeout
        self.child = Child(self.name, [], self.workdir / "stdout.txt", self.workdir / "stderr.txt", self.workdir)

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1, stable across restart()."""
        return self._port

    @property
    def host(self) -> str:
        """Always the loopback address: the server never listens elsewhere."""
        return HOST

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.child.alive()

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The current server process (None before the first start)."""
        return self.child.proc

    def _wait_ready(self) -> None:
        """Return once the started child serves; raise (TimeoutError, ChildError) when it does not."""
        raise NotImplementedError

    def _wait_listening(self) -> None:
        """Wait for the port to accept connections, giving up at once when the child exits."""
        deadline = time.monotonic() + self.start_timeout
        while not port_open(HOST, self._port):
            if not self.child.alive():
                raise ChildError(f"{self.name} exited with {self.child.returncode}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {HOST}:{self._port} after {self.start_timeout:.0f} s")
            time.sleep(0.05)

    def start(self) -> Self:
        """Start the child on the port once its last run let go of it, and wait until it serves."""
        if self.running:
            return self
        wait_port_closed(HOST, self._port, timeout=self.start_timeout)
        self.child.start()
        try:
            self._wait_ready()
        except Exception as exc:
            self.kill()
            raise RuntimeError(f"{self.name} did not start on port {self._port}:\n{self.log_text()}") from exc
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait: a clean exit (SIGKILL when it hangs)."""
        self.child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        self.child.kill()

    def restart(self, *, hard: bool = False) -> Self:
        """Stop (or kill when hard) and start again on the same port with the same state."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def log_text(self) -> str:
        """The server's log so far, across restarts (for assertions and failure messages)."""
        return "".join(p.read_text(errors="replace") for p in self._log_paths() if p.exists())

    def _log_paths(self) -> list[Path]:
        return [self.child.log_path]

    def close(self) -> None:
        """Stop the server and delete its folder (when this object created it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self._port}, running={self.running}, workdir={self.workdir})"
