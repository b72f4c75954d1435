"""A private Mosquitto broker per test: never the machine's shared one on 1883, so tests are isolated.

Settings that matter (Mosquitto 2.0.11, Debian):
- ``user root``: started as root, Mosquitto otherwise switches to user ``mosquitto`` and can no longer
  write the root-owned temp dir (persistence) or read root-owned files.
- ``max_queued_messages 1000000``: the default 1000 silently drops QoS 1 messages to a slow subscriber.
- ``persistence true`` in the temp dir: ``restart()`` keeps retained messages and persistent sessions.
  The database is written on clean exit (SIGTERM); ``kill()`` (SIGKILL) loses whatever was not autosaved.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from hazardwatch.procs import Child, free_port, mosquitto_binary, mosquitto_config, wait_port, wait_port_closed

HOST = "127.0.0.1"

__all__ = ["MosquittoBroker", "mosquitto_binary"]


class MosquittoBroker:
    """Start/stop/kill/restart a private broker on a free loopback port, with its state in a temp dir."""

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        autosave_interval: int = 1800,
        extra_config: str = "",
        start_timeout: float = 10.0,
    ) -> None:
        self.binary = mosquitto_binary()
        if self.binary is None:
            raise FileNotFoundError("mosquitto binary not found (apt-get install mosquitto)")
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="hw-mosquitto-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port = port or free_port()
        self.start_timeout = start_timeout
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        (self.workdir / "data").mkdir(exist_ok=True)
        self.conf_path.write_text(
            mosquitto_config(
                self._port,
                state_dir=self.workdir / "data",
                autosave_s=autosave_interval,
                log_file=self.log_path,
                extra=extra_config,
            )
        )
        argv = [str(self.binary), "-c", str(self.conf_path)]
        self.child = Child("mosquitto", argv, self.workdir / "stdout.txt", self.workdir / "stderr.txt", self.workdir)

    @property
    def port(self) -> int:
        """The broker's TCP port on 127.0.0.1 (stable across restart())."""
        return self._port

    @property
    def host(self) -> str:
        """Always the loopback address: the broker never listens elsewhere."""
        return HOST

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.child.alive()

    def start(self) -> MosquittoBroker:
        """Start the broker and wait until it accepts connections (raises with the log on failure)."""
        if self.running:
            return self
        wait_port_closed(HOST, self._port, timeout=self.start_timeout)
        self.child.start()
        try:
            wait_port(HOST, self._port, timeout=self.start_timeout)
        except TimeoutError as exc:
            self.kill()
            raise RuntimeError(f"mosquitto did not start on port {self._port}:\n{self.log_text()}") from exc
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait: a clean exit that writes the persistence database."""
        self.child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is saved beyond the last autosave."""
        self.child.kill()

    def restart(self, *, hard: bool = False) -> MosquittoBroker:
        """Stop (or kill when hard) and start again on the same port with the same state directory."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def log_text(self) -> str:
        """The broker's log and stderr so far (for assertions and failure messages)."""
        parts = []
        for path in (self.log_path, self.workdir / "stderr.txt"):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def close(self) -> None:
        """Stop the broker and delete its temp dir (when this object created it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MosquittoBroker(port={self._port}, running={self.running}, workdir={self.workdir})"
