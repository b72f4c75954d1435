"""`hazardwatch demo` on the command line: start everything, print the URL and token, report incidents."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from hazardwatch.demo import district
from hazardwatch.demo.brokers import Broker, parse_broker, start_broker
from hazardwatch.demo.configs import (
    ADMIN_TOKEN_ENV,
    EDGE_TOKEN_ENV,
    TOKEN_ENV,
    central_config,
    edge_config,
    scene_cameras,
    shipped_models,
    source_cameras,
)
from hazardwatch.demo.supervisor import Demo, DemoError
from hazardwatch.procs import port_free, port_open

DESCRIPTION = "`hazardwatch demo`: the whole system on one machine, so a new user sees it work in a minute."
DEFAULT_PORT = 8080
POLL_S = 2.0


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
        demo.keep_workdir = demo.keep_workdir or any(c.returncode not in (None, 0) for c in demo.children)
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

    token, edge_token, admin_token = (secrets.token_urlsafe(18) for _ in range(3))
    central_yaml = demo.workdir / "central.yaml"
    central_yaml.write_text(yaml.safe_dump(central_config(broker, port, demo.workdir), sort_keys=False))
    cli = [sys.executable, "-m", "hazardwatch.cli", "--log-level", args.log_level]
    tokens = {TOKEN_ENV: token, EDGE_TOKEN_ENV: edge_token, ADMIN_TOKEN_ENV: admin_token}
    central = demo.spawn("central", [*cli, "central", "--config", str(central_yaml)], tokens)
    central_url = demo.wait_url(central)
    edge_yaml = demo.workdir / "edge.yaml"
    edge_yaml.write_text(
        yaml.safe_dump(edge_config(broker, cameras, models, demo.workdir, scene_hazards, central_url), sort_keys=False)
    )
    edge = demo.spawn("edge", [*cli, "edge", "--config", str(edge_yaml)], {EDGE_TOKEN_ENV: edge_token})
    edge_url = demo.wait_url(edge)

    used = [m["manifest"] for m in yaml.safe_load(edge_yaml.read_text())["models"]]
    counted = "1 camera" if len(cameras) == 1 else f"{len(cameras)} cameras"
    print(f"edge: {edge_url}/ ({counted}; models: {', '.join(Path(m).stem for m in used)})", file=out)
    print(f"logs: {demo.workdir}", file=out)
    print(f"dashboard: {central_url}/  (sign in with the token below; Ctrl-C stops everything)", file=out)
    print(f"token: {token}", file=out)
    print(f"admin token: {admin_token}  (a model maintainer's: the Models tab, comparisons and rollouts)", file=out)
    out.flush()
    if args.warning_s > 0:
        print(district.push_sample_warning(central_url, token, args.warning_s), file=out, flush=True)

    seen: set[int] = set()
    first_reported = False
    watch = ""
    while not stop.wait(POLL_S):
        for child in demo.children:
            if not child.alive():
                raise DemoError(
                    f"{child.name} stopped unexpectedly (exit code {child.returncode}); "
                    f"read its log in {child.log_path}:\n{child.log_tail()}"
                )
        try:
            items = get_json(f"{central_url}/api/v1/incidents?limit=50", token)["items"]
            now_watch = district.watch_line(get_json(f"{central_url}/api/v1/watch", token)["items"])
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            continue
        if now_watch != watch and (watch or "back to" not in now_watch):
            print(now_watch, file=out, flush=True)
        watch = now_watch
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `hazardwatch demo` to the CLI (argparse only; everything heavy is imported when it runs)."""
    demo = sub.add_parser(
        "demo",
        help="run broker, central, dashboard and an edge with demo cameras on this machine",
        description=DESCRIPTION,
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
    demo.add_argument(
        "--warning-s",
        type=float,
        default=district.WARNING_S,
        metavar="S",
        help=f"how long the sample rainstorm warning lasts (default {district.WARNING_S:.0f} s; 0: push none)",
    )
    demo.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    args.port_given = args.port is not None
    if args.port is None:
        args.port = DEFAULT_PORT
    return run(args)
