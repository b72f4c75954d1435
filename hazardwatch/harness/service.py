"""A hazardwatch service (`hazardwatch <role> --config FILE`) as a test's child process.

The process handling itself is hazardwatch/procs.py's `Child`, shared with the demo and the benches;
this adds the service's command line, its HTTP URL and the test-friendly stop (a hang is an error).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Self

from hazardwatch.procs import Child


class ServiceProcess:
    """Start, wait for the printed URL, stop (SIGTERM; TimeoutExpired if it hangs) or kill."""

    role = ""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.url = ""
        self.child = Child(self.role, [], log_path.with_name(log_path.name + ".out"), log_path)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "hazardwatch.cli", self.role, "--config", str(self.config)]

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.child.proc

    def start(self, timeout: float = 30.0) -> Self:
        self.child.argv = self.command()
        self.child.start()
        self.url = self.child.wait_url(timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        self.child.kill()

    def stop(self, timeout: float = 20.0) -> int:
        return self.child.stop(timeout, escalate=False) or 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.child.alive():
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                self.kill()
