"""A private Mosquitto broker per test: never the machine's shared one on 1883, so tests are isolated.

Settings that matter (Mosquitto 2.0.11, Debian):
- ``user root``: started as root, Mosquitto otherwise switches to user ``mosquitto`` and can no longer
  write the root-owned temp dir (persistence) or read root-owned files.
- ``max_queued_messages 1000000``: the default 1000 silently drops QoS 1 messages to a slow subscriber.
- ``persistence true`` in the temp dir: ``restart()`` keeps retained messages and persistent sessions.
  The database is written on clean exit (SIGTERM); ``kill()`` (SIGKILL) loses whatever was not autosaved.
"""

from __future__ import annotations

from pathlib import Path

from hazardwatch.procs import mosquitto_binary, mosquitto_config

from .server import LocalServer

__all__ = ["MosquittoBroker"]


class MosquittoBroker(LocalServer):
    """Start/stop/kill/restart a private broker on a free loopback port, with its state in a temp dir."""

    name = "mosquitto"

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        autosave_interval: int = 1800,
        extra_config: str = "",
        start_timeout: float = 10.0,
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto binary not found (apt-get install mosquitto)")
        super().__init__(port, workdir, start_timeout)
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        (self.workdir / "data").mkdir(exist_ok=True)
        self.conf_path.write_text(
            mosquitto_config(
                self.port,
                state_dir=self.workdir / "data",
                autosave_s=autosave_interval,
                log_file=self.log_path,
                extra=extra_config,
            )
        )
        self.child.argv = [binary, "-c", str(self.conf_path)]

    def _wait_ready(self) -> None:
        self._wait_listening()

    def _log_paths(self) -> list[Path]:
        return [self.log_path, self.child.log_path]
