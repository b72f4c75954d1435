"""Supervised child processes and loopback ports: the one copy the demo, the tests and the benches share.

A `Child` is one process with its stdout and stderr in files (a chatty child never blocks on a full
pipe), started, waited for until it prints a line or opens a port, and stopped with SIGTERM and then
SIGKILL. The port helpers pick free loopback ports and wait for servers to listen or let go.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1


class ChildError(RuntimeError):
    """A child exited or stayed silent while starting; the text carries the end of its log."""


def free_port(host: str = HOST) -> int:
    """A TCP port the OS says is free right now (it picks it, so collisions are rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on host:port and we could bind it.

    Probes with SO_REUSEADDR, as the servers bind: connections of a stopped server left in TIME_WAIT do
    not keep its port, while a live listener still makes the bind fail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if hasattr(socket, "SO_REUSEADDR") and os.name != "nt":  # on Windows it would let us share a live port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until host:port accepts connections; else TimeoutError, so a dead server fails fast."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout:.1f} s")


def wait_port_closed(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until host:port refuses connections, so a restart can rebind the same port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} still accepts connections after {timeout:.1f} s")


def mosquitto_binary() -> str | None:
    """Mosquitto's executable; Debian puts it in /usr/sbin, often not on a user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def mosquitto_config(
    port: int,
    *,
    host: str = HOST,
    state_dir: Path | None = None,
    autosave_s: int = 1800,
    log_file: Path | None = None,
    extra: str = "",
) -> str:
    """A private Mosquitto's config: anonymous on loopback, a deep queue, state kept only in `state_dir`.

    `max_queued_messages`: the default 1000 silently drops QoS 1 messages to a slow subscriber. `user
    root` when started as root: Mosquitto would otherwise switch to user mosquitto and lose access to
    our own files. Without `log_file` only errors, warnings and notices go to stderr.
    """
    persistence = (
        ["persistence true", f"persistence_location {state_dir}/", f"autosave_interval {autosave_s}"]
        if state_dir
        else ["persistence false"]
    )
    logging = (
        [f"log_dest file {log_file}", "log_type all", "connection_messages true"]
        if log_file
        else ["log_dest stderr", "log_type error", "log_type warning", "log_type notice"]
    )
    head = [f"listener {port} {host}", "allow_anonymous true", "user root" if os.geteuid() == 0 else ""]
    return "\n".join([*head, "max_queued_messages 1000000", *persistence, *logging, extra, ""])


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM if the parent dies without cleaning up."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised child process with its output in `out_path` and its log (stderr) in `log_path`."""

    name: str
    argv: list[str]
    out_path: Path
    log_path: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    own_group: bool = False  # Ctrl-C in a terminal then reaches the parent only, which stops us in order
    die_with_parent: bool = False
    proc: subprocess.Popen[bytes] | None = None
    _out_from: int = 0  # output before this offset belongs to an earlier run of the same child

    def start(self) -> Child:
        self._out_from = self.out_path.stat().st_size if self.out_path.exists() else 0
        with self.out_path.open("ab") as out, self.log_path.open("ab") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.cwd,
                env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                process_group=0 if self.own_group else None,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def output(self) -> str:
        """What this run printed so far."""
        if not self.out_path.exists():
            return ""
        with self.out_path.open("rb") as f:
            f.seek(self._out_from)
            return f.read().decode(errors="replace")

    def log_tail(self, chars: int = 2000) -> str:
        text = ""
        for path in (self.log_path, self.out_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return text[-chars:]

    def wait_line(self, marker: str, timeout: float) -> str:
        """The first output line containing `marker`; ChildError if the child exits or stays silent."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output().splitlines():
                if marker in line:
                    return line.strip()
            if not self.alive():
                raise ChildError(f"{self.name} exited with {self.returncode} while starting: {self.log_tail(3000)}")
            if time.monotonic() >= deadline:
                raise ChildError(f"{self.name} did not start within {timeout:.0f} s: {self.log_tail(3000)}")
            time.sleep(0.05)

    def wait_url(self, timeout: float) -> str:
        """The 'http://...' address a hazardwatch service prints once it serves."""
        return self.wait_line("http://", timeout).split(" ")[-1].rstrip("/")

    def stop(self, timeout: float = 15.0, *, escalate: bool = True) -> int | None:
        """SIGTERM and wait; SIGKILL after `timeout` when `escalate`, else TimeoutExpired propagates."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if not escalate:
                    raise
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
