"""`hazardwatch demo`: the whole system on one machine, so a new user sees it work in a minute.

It starts a private Mosquitto (or uses `--broker`), one `hazardwatch central` on SQLite and one
`hazardwatch edge`, each as a child process with a generated config in a temporary folder. The edge's
cameras replay scenes the project renders itself (`edge/demo_scene.py`) or whatever `--source` names,
and the shipped models really detect on them: no alert is injected.

Why child processes: each part runs exactly as in production (same command, same config schema), a
crash in one is visible as an exit code, and stopping is plain signals. The children get their own
process group, so the terminal's Ctrl-C reaches only the demo, which stops them in order (edge, then
central, then the broker); PR_SET_PDEATHSIG makes the kernel stop them if the demo itself is killed.

The embedded broker is Mosquitto when it is installed (MQTT 5, shared subscriptions, as in
production). Otherwise it is amqtt, a pure-Python broker from PyPI (`pip install '.[demo]'`), so a
fresh machine needs nothing else. amqtt (0.12) speaks MQTT 3.1.1 only and has no shared
subscriptions, so edge and central are configured for 3.1.1 and central subscribes without `$share`,
which is fine for the demo's single central instance.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

HOST = "127.0.0.1"
DEFAULT_PORT = 8080
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_S = 2.0
TOKEN_ENV = "HAZARDWATCH_DEMO_TOKEN"
EDGE_ID = "demo-edge"
PR_SET_PDEATHSIG = 1


class DemoError(Exception):
    """A problem the user can fix; the text is one sentence saying what to do."""


@dataclass(frozen=True)
class DemoCamera:
    """One camera of the demo edge: where it looks and what it plays."""

    id: str
    name: str
    source: str
    lat: float
    lon: float
    bearing_deg: float
    interval_s: float


# The rendered scenes' cameras sit far enough apart (> 15 km) that each fire is its own incident.
SCENE_CAMERAS: tuple[tuple[str, str, float, float, float], ...] = (
    ("hillside", "Wutong hillside tower", 22.6000, 114.1900, 40.0),
    ("valley", "Yangtai valley mast", 22.6600, 113.9300, 300.0),
    ("reservoir", "Shenzhen reservoir dam", 22.5600, 114.1300, 90.0),
)


# -- small helpers ------------------------------------------------------------------------------------
def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on host:port and we could bind it.

    Probes with SO_REUSEADDR, as the dashboard binds: connections of a stopped demo left in TIME_WAIT do not
    keep its port, so a restart within a minute gets 8080 again; a live listener still makes the bind fail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if hasattr(socket, "SO_REUSEADDR") and os.name != "nt":  # on Windows it would let us share a live port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str | None:
    """Mosquitto's executable; Debian puts it in /usr/sbin, often not on a user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM if the demo dies without cleaning up."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


DEMO_FOLDER = "demo"  # hand-built graphs for the rendered scenes, never for a user's footage


def shipped_models(demo_only: bool = False) -> dict[str, Path]:
    """Hazard -> manifest of the models shipped in hazardwatch.models that load: ONNX ones only (the
    scene-change fallen-tree detector needs minutes of persistence), not those disabled by default
    (too many false alarms on scenes unlike their data), int8 preferred where both exist.

    `demo_only`: the hand-built demo graphs instead (the red-patch "fire" model scores anything red or
    orange, so an orange lorry on real footage would be a fire): they run on the rendered scenes only."""
    from importlib import resources

    from hazardwatch.manifest import ManifestError, verify_model_file

    root = Path(str(resources.files("hazardwatch.models")))
    found: dict[str, tuple[bool, Path]] = {}
    for manifest in sorted(root.glob("*/*.json")):
        if (manifest.parent.name == DEMO_FOLDER) != demo_only:
            continue
        try:
            spec, _ = verify_model_file(manifest)
        except (ManifestError, OSError, ValueError):
            continue
        if spec.runtime != "onnx" or not spec.enabled_by_default:  # off unless a site names it in its config
            continue
        hazard = spec.hazard.value
        int8 = spec.precision == "int8"
        if hazard not in found or (int8 and not found[hazard][0]):
            found[hazard] = (int8, manifest)
    return {hazard: path for hazard, (_, path) in found.items()}


# -- child processes ------------------------------------------------------------------------------------
@dataclass
class Child:
    """One child process, its log files, and the address it printed when ready."""

    name: str
    proc: subprocess.Popen[bytes]
    out_path: Path
    log_path: Path
    url: str = ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        text = ""
        for path in (self.log_path, self.out_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return text[-chars:]

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL after `timeout`: every part exits cleanly on SIGTERM."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Demo:
    """Everything one demo run started, so that stopping it can undo all of it."""

    workdir: Path
    keep_workdir: bool
    out: TextIO
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        out_path, log_path = self.workdir / f"{name}.out", self.workdir / f"{name}.log"
        with out_path.open("wb") as out, log_path.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
                process_group=0,  # Ctrl-C in the terminal reaches the demo only; it stops us in order
                preexec_fn=_die_with_parent,
            )
        child = Child(name, proc, out_path, log_path)
        self.children.append(child)
        return child

    def wait_url(self, child: Child, timeout: float = START_TIMEOUT_S) -> str:
        """Wait for the 'http://...' line a hazardwatch process prints once it serves."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in child.out_path.read_text(errors="replace").splitlines():
                if "http://" in line:
                    child.url = line.strip().split(" ")[-1].rstrip("/")
                    return child.url
            if not child.alive():
                raise DemoError(
                    f"{child.name} exited with code {child.proc.returncode} while starting; "
                    f"its log is in {child.log_path}:\n{child.log_tail()}"
                )
            time.sleep(0.1)
        raise DemoError(f"{child.name} did not start within {timeout:.0f} s; read its log in {child.log_path}")

    def stop(self) -> None:
        """Stop the children newest first (edge, central, broker), then remove the temp folder."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# -- configs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    protocol: str = "5"  # "3.1.1" for amqtt


def start_broker(demo: Demo, kind: str) -> tuple[Broker, str]:
    """The embedded broker: Mosquitto when installed (or asked for), else amqtt."""
    if kind == "mosquitto" or (kind == "auto" and mosquitto_binary()):
        host, port = start_mosquitto(demo)
        return Broker(host, port), "embedded Mosquitto"
    return start_amqtt(demo), "embedded amqtt, MQTT 3.1.1"


def start_amqtt(demo: Demo) -> Broker:
    """A private amqtt broker on a free loopback port (the fallback when Mosquitto is not installed)."""
    binary = shutil.which("amqtt") or str(Path(sys.executable).with_name("amqtt"))
    if not Path(binary).exists():
        raise DemoError(
            "the demo needs an MQTT broker and neither Mosquitto nor amqtt is installed: run "
            "`.venv/bin/pip install -e '.[edge,demo]'` (or `sudo apt-get install mosquitto`), "
            "or pass --broker HOST:PORT"
        )
    port = free_port()
    conf = demo.workdir / "amqtt.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
    )
    child = demo.spawn("amqtt", [binary, "-c", str(conf)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and child.alive():
        if port_open(HOST, port):
            return Broker(HOST, port, "3.1.1")
        time.sleep(0.05)
    raise DemoError(f"the embedded amqtt broker did not start; its log says: {child.log_tail().strip()[-500:]}")


def start_mosquitto(demo: Demo) -> tuple[str, int]:
    """A private Mosquitto on a free loopback port, with a generated config."""
    binary = mosquitto_binary()
    if binary is None:
        raise DemoError(
            "Mosquitto is not installed: run `sudo apt-get install mosquitto` or use --embedded-broker amqtt"
        )
    last_error = ""
    for _ in range(3):  # a port taken between choosing and binding: choose again
        port = free_port()
        conf = demo.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {port} {HOST}",
                    "allow_anonymous true",  # loopback only, for one demo run
                    "user root" if os.geteuid() == 0 else "",  # stay able to read our own files
                    "max_queued_messages 1000000",  # the default 1000 silently drops QoS 1 messages
                    "persistence false",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )
        child = demo.spawn("mosquitto", [binary, "-c", str(conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and child.alive():
            if port_open(HOST, port):
                return HOST, port
            time.sleep(0.05)
        last_error = child.log_tail()
        child.stop()
        demo.children.remove(child)
    raise DemoError(f"the embedded Mosquitto did not start; its log says: {last_error.strip()[-500:]}")


def parse_broker(text: str) -> tuple[str, int]:
    """'HOST:PORT' or 'HOST' (port 1883)."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "1883")
    if not host or not port.isdigit():
        raise DemoError(f"--broker {text!r} is not HOST:PORT: pass for example --broker 127.0.0.1:1883")
    return host, int(port)


def central_config(broker: Broker, port: int, workdir: Path) -> dict[str, Any]:
    return {
        "instance_id": "demo-central",
        "site": "hazardwatch demo",
        "timezone": "Asia/Shanghai",
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "protocol": broker.protocol,
            "shared_subscription": broker.protocol == "5",
            "client_id": f"hazardwatch-demo-central-{os.getpid()}",
        },
        "database": {"url": f"sqlite:///{workdir / 'central.db'}"},
        "http": {"host": HOST, "port": port},
        "auth": {"tokens": [{"name": "demo-operator", "role": "operator", "token": {"env": TOKEN_ENV}}]},
        "timers": {"group_wait_s": 1, "group_interval_s": 10, "repeat_interval_s": 3600},
        "receivers": [],
        "routes": [],
    }


def edge_config(
    broker: Broker,
    cameras: list[DemoCamera],
    models: dict[str, Path],
    workdir: Path,
    scene_hazards: list[str],
) -> dict[str, Any]:
    """The edge's config: rendered scenes run the models that detect on them, --source cameras run all."""
    hazards_for = {cam.id: scene_hazards if cam.id.startswith("scene-") else list(models) for cam in cameras}
    used = {h: path for h, path in models.items() if any(h in hs for hs in hazards_for.values())}
    return {
        "edge_id": EDGE_ID,
        "site": "hazardwatch demo",
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "protocol": broker.protocol,
            "client_id": f"hazardwatch-demo-edge-{os.getpid()}",
        },
        "patrol": {"burst_interval_s": 1, "phase_jitter_s": 0, "offline_after_s": 20},
        # A quick vote so the first incident comes within seconds of the flames (2 of the last 3 looks).
        "confirm": {h: {"window": 3, "min_votes": 2, "threshold": 0.5, "end_after_s": 30} for h in used},
        "models": [{"manifest": str(path), "threads": 1} for path in used.values()],
        "cameras": [
            {
                "id": cam.id,
                "name": cam.name,
                "source": cam.source,
                "mode": "snapshot",
                "location": {"lat": cam.lat, "lon": cam.lon},
                "bearing_deg": cam.bearing_deg,
                "fov_deg": 60,
                "hazards": {h: {"interval_s": cam.interval_s} for h in hazards_for[cam.id]},
            }
            for cam in cameras
        ],
        "outbox": {"path": str(workdir / "edge-outbox.db")},
        "http": {"host": HOST, "port": 0},
        "heartbeat_s": 10,
        # A field edge spaces the looks a camera learns its normal from by 2 minutes (half an hour to a
        # ready reference); the demo learns every 5 s so a newcomer sees it within a couple of minutes.
        "reference": {"min_interval_s": 5},
    }


def scene_cameras(workdir: Path) -> list[DemoCamera]:
    """Render the project's own scenes, one folder (and one camera) each."""
    from hazardwatch.edge.demo_scene import write_scene

    cams = []
    for scene, name, lat, lon, bearing in SCENE_CAMERAS:
        folder = workdir / "scenes" / scene
        write_scene(folder, scene=scene)
        cams.append(DemoCamera(f"scene-{scene}", name, str(folder), lat, lon, bearing, 1.0))
    return cams


def source_cameras(sources: list[str]) -> list[DemoCamera]:
    """Cameras for the user's --source values: video files, image folders or stream URLs."""
    cams = []
    for i, src in enumerate(sources, 1):
        if "://" not in src:
            path = Path(src).expanduser().resolve()
            if not path.exists():
                raise DemoError(f"--source {src}: no such file or folder: pass a video file, an image folder or a URL")
            src = str(path)
        cams.append(DemoCamera(f"source-{i}", f"Source {i}", src, 22.54 + 0.02 * i, 114.06, 90.0, 2.0))
    return cams


# -- the run ------------------------------------------------------------------------------------------
def get_json(url: str, token: str, timeout: float = 5.0) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def run(args: argparse.Namespace) -> int:
    """Start everything, print the URL and token, report incidents until Ctrl-C, stop everything."""
    out = sys.stdout
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="hazardwatch-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir, keep_workdir=bool(args.workdir), out=out)
    try:
        return _run(args, demo, stop)
    except DemoError as exc:
        demo.keep_workdir = demo.keep_workdir or any(c.proc.poll() not in (None, 0) for c in demo.children)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        with contextlib.suppress(OSError):  # stdout may be a closed pipe; stopping must still happen
            print("stopping: edge, central, broker ...", file=out, flush=True)
        try:
            demo.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        with contextlib.suppress(OSError):
            print("stopped; nothing left running", file=out, flush=True)


def _run(args: argparse.Namespace, demo: Demo, stop: threading.Event) -> int:
    out = demo.out
    started = time.monotonic()
    port = args.port
    if port and not port_free(port):
        if args.port_given:
            raise DemoError(f"port {port} is in use: stop the program using it or pass another --port")
        port = 0  # the default port is taken: let the OS choose, the URL below says which

    # The user's footage runs the real models; the rendered scenes show flames, which the demo's
    # hand-built fire graph detects.
    models = shipped_models(demo_only=not args.source)
    if not models:
        raise DemoError("no shipped model could be loaded: reinstall with `pip install -e '.[edge]'`")
    if args.source:
        cameras = source_cameras(args.source)
    else:
        print("rendering the demo scenes ...", file=out, flush=True)
        cameras = scene_cameras(demo.workdir)
    scene_hazards = [h for h in ("fire",) if h in models] or list(models)

    if args.broker:
        broker = Broker(*parse_broker(args.broker))
        if not port_open(broker.host, broker.port, timeout=2.0):
            raise DemoError(
                f"no MQTT broker answers at {broker.host}:{broker.port}: start it, or leave out --broker to embed one"
            )
        broker_note = f"mqtt://{broker.host}:{broker.port} (yours)"
    else:
        broker, what = start_broker(demo, args.embedded_broker)
        broker_note = f"mqtt://{broker.host}:{broker.port} ({what})"
    print(f"broker: {broker_note}", file=out, flush=True)

    token = secrets.token_urlsafe(18)
    central_yaml = demo.workdir / "central.yaml"
    central_yaml.write_text(yaml.safe_dump(central_config(broker, port, demo.workdir), sort_keys=False))
    edge_yaml = demo.workdir / "edge.yaml"
    edge_yaml.write_text(
        yaml.safe_dump(edge_config(broker, cameras, models, demo.workdir, scene_hazards), sort_keys=False)
    )
    cli = [sys.executable, "-m", "hazardwatch.cli", "--log-level", args.log_level]
    central = demo.spawn("central", [*cli, "central", "--config", str(central_yaml)], {TOKEN_ENV: token})
    central_url = demo.wait_url(central)
    edge = demo.spawn("edge", [*cli, "edge", "--config", str(edge_yaml)])
    edge_url = demo.wait_url(edge)

    used = [m["manifest"] for m in yaml.safe_load(edge_yaml.read_text())["models"]]
    print(f"edge: {edge_url}/ ({len(cameras)} cameras; models: {', '.join(Path(m).stem for m in used)})", file=out)
    print(f"logs: {demo.workdir}", file=out)
    print(f"dashboard: {central_url}/  (sign in with the token below; Ctrl-C stops everything)", file=out)
    print(f"token: {token}", file=out, flush=True)

    seen: set[int] = set()
    first_reported = False
    while not stop.wait(POLL_S):
        for child in demo.children:
            if not child.alive():
                raise DemoError(
                    f"{child.name} stopped unexpectedly (exit code {child.proc.returncode}); "
                    f"read its log in {child.log_path}:\n{child.log_tail()}"
                )
        try:
            items = get_json(f"{central_url}/api/v1/incidents?limit=50", token)["items"]
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            continue
        for inc in sorted(items, key=lambda i: i["id"]):
            if inc["id"] in seen:
                continue
            seen.add(inc["id"])
            after = "" if first_reported else f" ({time.monotonic() - started:.0f} s after start)"
            first_reported = True
            print(
                f"incident #{inc['id']}: {inc['hazard']} ({inc['severity']}), {inc['camera_count']} camera(s), "
                f"score {inc['score_max']:.2f}{after}",
                file=out,
                flush=True,
            )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `hazardwatch demo` to the CLI (argparse only; everything heavy is imported when it runs)."""
    demo = sub.add_parser(
        "demo",
        help="run broker, central, dashboard and an edge with demo cameras on this machine",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    demo.add_argument(
        "--source",
        action="append",
        metavar="SRC",
        help="a video file, image folder or rtsp:// URL to watch instead of the rendered scenes (repeatable)",
    )
    demo.add_argument("--broker", metavar="HOST:PORT", help="use this MQTT 5 broker instead of an embedded one")
    demo.add_argument(
        "--embedded-broker",
        choices=["auto", "mosquitto", "amqtt"],
        default="auto",
        help="which broker to embed: Mosquitto when installed (auto), else amqtt",
    )
    demo.add_argument(
        "--port", type=int, default=None, help=f"dashboard port (default {DEFAULT_PORT}, or a free one if taken)"
    )
    demo.add_argument("--workdir", help="keep configs, database and logs here (default: a temp folder, removed)")
    demo.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    args.port_given = args.port is not None
    if args.port is None:
        args.port = DEFAULT_PORT
    return run(args)
