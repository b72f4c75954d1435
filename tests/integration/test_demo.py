"""`hazardwatch demo` as a user runs it: a subprocess that must show real incidents and leave nothing behind.

The incidents come from the edge's model detecting the flames in the rendered scenes; the test only
reads the API. After SIGINT every process the demo started and every port it opened must be gone.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hazardwatch.procs import free_port, mosquitto_binary, port_open

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
START_S = 60.0
FIRST_INCIDENT_S = 90.0


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc (psutil is not a dependency)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get(url: str, token: str) -> dict:
    import json

    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


class DemoRun:
    """The demo as a subprocess, with its stdout lines collected on a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hazardwatch.cli", "demo", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if line.startswith(prefix):
                return line
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting with {prefix!r}; output:\n" + "\n".join(self.lines[-60:]))

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.mark.parametrize("broker_kind", ["mosquitto", "amqtt"])
def test_demo_shows_detected_incidents_and_leaves_nothing_running(broker_kind):
    if broker_kind == "mosquitto" and mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    if broker_kind == "amqtt":
        pytest.importorskip("amqtt", reason="amqtt is not installed (pip install '.[demo]')")
    started = time.monotonic()
    demo = DemoRun("--port", str(free_port()), "--embedded-broker", broker_kind)
    try:
        dashboard = demo.wait_line("dashboard: ", START_S).split()[1].rstrip("/")
        token = demo.wait_line("token: ", 5).split(" ", 1)[1].strip()
        assert len(token) >= 16
        admin = demo.wait_line("admin token: ", 1).split()[2]
        assert len(admin) >= 16 and admin != token
        broker = urlparse(demo.wait_line("broker: ", 1).split()[1])
        edge = urlparse(demo.wait_line("edge: ", 1).split()[1])
        workdir = Path(demo.wait_line("logs: ", 1).split(" ", 1)[1])
        central = urlparse(dashboard)
        ports = {"broker": broker.port, "edge": edge.port, "central": central.port}
        assert all(ports.values()), ports

        # The page is served and the API wants the token.
        with urllib.request.urlopen(dashboard + "/", timeout=5) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(dashboard + "/api/v1/incidents", "not-the-token")
        assert refused.value.code == 401
        for who, code in ((token, 403), (admin, 400)):  # rollouts are a maintainer's: only the admin token
            rollout = urllib.request.Request(  # passes the role check (and then fails on the empty body)
                dashboard + "/api/v1/rollouts", data=b"{}", method="POST",
                headers={"Authorization": f"Bearer {who}", "Content-Type": "application/json"},
            )  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(rollout, timeout=5)
            assert refused.value.code == code

        items: list[dict] = []
        while time.monotonic() - started < FIRST_INCIDENT_S and not items:
            items = get(dashboard + "/api/v1/incidents", token)["items"]
            if not items:
                assert demo.proc.poll() is None, demo.output()
                time.sleep(1)
        first_after = time.monotonic() - started
        assert items, f"no incident within {FIRST_INCIDENT_S:.0f} s:\n{demo.output()}"
        print(f"first incident {first_after:.1f} s after starting the demo")

        # It came from the edge's model looking at a rendered scene, not from an injected alert.
        incident = get(f"{dashboard}/api/v1/incidents/{items[0]['id']}", token)
        assert incident["hazard"] == "fire"
        cams = incident["cameras"]
        assert cams and all(c["edge_id"] == "demo-edge" and c["camera_id"].startswith("scene-") for c in cams)
        assert incident["evidence"], "the alert should carry the snapshot it was detected on"
        # The quiet control camera must not alarm.
        every = get(dashboard + "/api/v1/incidents?limit=200", token)["items"]
        joined = [get(f"{dashboard}/api/v1/incidents/{i['id']}", token) for i in every]
        assert not any(c["camera_id"] == "scene-reservoir" for i in joined for c in i["cameras"])

        family = descendants(demo.proc.pid)
        assert len(family) >= 3, f"expected broker, central and edge below the demo, got {family}"
        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(45) == 0, demo.output()
    finally:
        demo.kill()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.1)
    assert not [p for p in family if alive(p)], "processes left running after Ctrl-C"
    for name, port in ports.items():
        assert not port_open("127.0.0.1", port), f"{name} still listens on {port}"
    assert not workdir.exists(), "the demo's temp folder was left behind"
    assert "stopped; nothing left running" in demo.output()


def test_demo_with_an_unreachable_broker_says_what_to_do():
    port = free_port()
    demo = DemoRun("--broker", f"127.0.0.1:{port}", "--port", str(free_port()))
    try:
        assert demo.proc.wait(60) == 1
    finally:
        demo.kill()
    time.sleep(0.2)
    errors = [line for line in demo.lines if line.startswith("error: ")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "--broker" in errors[0], demo.output()


def test_the_warnings_end_is_printed_on_the_sites_clock_not_this_machines(monkeypatch):
    """The console said 22:17 (this machine's zone) while the dashboard said 06:17 (the site's): the
    console now prints the site's clock and names its zone, whatever zone the demo runs in."""
    import http.server
    import json
    import re
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from hazardwatch.demo import configs, district
    from hazardwatch.demo.brokers import Broker

    class Central(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"result": "started"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    monkeypatch.setenv("TZ", "America/Los_Angeles")  # 15 or 16 hours behind the site's clock
    time.tzset()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Central)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        line = district.push_sample_warning(f"http://127.0.0.1:{server.server_address[1]}", "t", 180.0)
    finally:
        server.shutdown()
        monkeypatch.undo()
        time.tzset()
    site = configs.central_config(Broker("127.0.0.1", 1883, "5"), 0, Path("/tmp"))["timezone"]
    found = re.search(r"until (\d\d):(\d\d):(\d\d) (\S+)\)", line)
    assert found and found[4] == site == "Asia/Shanghai", line
    expected = datetime.now(ZoneInfo(site)).timestamp() + 180.0
    shown = datetime.now(ZoneInfo(site)).replace(hour=int(found[1]), minute=int(found[2]), second=int(found[3]))
    off = (shown.timestamp() - expected + 43200) % 86400 - 43200  # across midnight too
    assert abs(off) < 10, (line, off)
