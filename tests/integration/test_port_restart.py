"""A restarted demo or central gets its port back at once, though the last run's connections sit in TIME_WAIT.

Real central processes on a real port: serve a request, stop (the server closes the kept-alive connection
first, so TIME_WAIT is on the server's port), then probe and start again on the same port straight away.
"""

from __future__ import annotations

import socket
from pathlib import Path

from hazardwatch.demo import port_free
from hazardwatch.harness.central_proc import CentralProcess, write_central_config
from hazardwatch.procs import free_port


def time_wait_on(port: int) -> bool:
    """True when a TCP connection with local port `port` is in TIME_WAIT (read from /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.split(":")[1], 16) == port and state == "06":
            return True
    return False


def serve_one_request(port: int) -> socket.socket:
    """A kept-alive connection that has had one response; the caller closes it after the server has."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert conn.recv(4096).startswith(b"HTTP/1.1 200 ")
    return conn


def test_central_restarts_on_the_same_port_at_once(tmp_path):
    port = free_port()
    cfg = write_central_config(
        tmp_path / "central.yaml",
        broker_port=None,
        database_url=f"sqlite:///{tmp_path}/central.db",
        http={"host": "127.0.0.1", "port": port},
    )
    first = CentralProcess(cfg, tmp_path / "central-1.log").start()
    try:
        assert first.url.endswith(f":{port}")
        assert not port_free(port), "a live listener must make the probe fail"
        conn = serve_one_request(port)
    finally:
        first.__exit__(None, None, None)
    conn.settimeout(10)
    assert conn.recv(1) == b""  # the server closed first
    conn.close()
    assert time_wait_on(port), "the test needs a connection in TIME_WAIT on the server's port"

    assert port_free(port), "TIME_WAIT must not make the demo's probe pick another port"
    with CentralProcess(cfg, tmp_path / "central-2.log") as second:
        assert second.url.endswith(f":{port}")
        serve_one_request(port).close()
