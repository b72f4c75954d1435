"""Weather warnings drive the patrol, end to end on real parts.

A real ATOM index feed (the NWS index structure from the shared samples) served by an HTTP server in
the test links to real agency CAP messages (Environment Canada, NSW RFS), rewritten only in identifier,
type, references, times and area so they fall on the test cameras and are current. A real Mosquitto, a
real `hazardwatch central` (SQLite) and two real `hazardwatch edge` processes with image-folder
cameras: the warning raises exactly the covered cameras' patrol rate (edge /metrics and /api/cameras),
an Update narrows it, a Cancel and an expiry restore it. Hostile and broken documents and feeds change
nothing and are counted. The lifecycle also runs on PostgreSQL at service level.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiohttp import web
from support.cap_samples import rewrite, sample

from hazardwatch.contract import parse_message
from hazardwatch.harness.central_proc import ADMIN, OPERATOR, VIEWER, CentralProcess, write_central_config
from hazardwatch.harness.edge_proc import EdgeProcess, wait_until, write_edge_config
from hazardwatch.harness.toy_models import red_patch_manifest
from hazardwatch.procs import free_port

CAMS = {
    ("edge-a", "cam-1"): (42.00, -82.60),
    ("edge-a", "cam-2"): (42.30, -82.20),
    ("edge-b", "cam-3"): (42.05, -82.45),
}
BOTH = [(41.9, -82.7), (41.9, -82.4), (42.1, -82.4), (42.1, -82.7)]  # cam-1 and cam-3, not cam-2
ONE = [(41.9, -82.7), (41.9, -82.5), (42.1, -82.5), (42.1, -82.7)]  # cam-1 only
RULES = [
    {"events": ["thunderstorm", "orages"], "levels": {"waterlogging": "high"}},
    {"events": ["fire"], "levels": {"smoke": "high"}},
]
BASE_S = 20.0
HIGH_S = 5.0  # 20 s x the edge's default risk factor 0.25
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>'
)


class FeedServer:
    """aiohttp on a free port in its own thread: an ATOM index with ETags, CAP documents, a slow path."""

    def __init__(self) -> None:
        self.port = free_port()
        self.docs: dict[str, bytes] = {}
        self.index = b""
        self.hits: dict[str, int] = {}
        self.not_modified = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _index(self, request: web.Request) -> web.Response:
        self.hits["index"] = self.hits.get("index", 0) + 1
        etag = '"' + hashlib.sha256(self.index).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=self.index, content_type="application/atom+xml", headers={"ETag": etag})

    async def _doc(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        if name not in self.docs:
            raise web.HTTPNotFound()
        return web.Response(body=self.docs[name], content_type="application/cap+xml")

    async def _slow(self, request: web.Request) -> web.Response:
        self.hits["slow"] = self.hits.get("slow", 0) + 1
        await asyncio.sleep(6)  # longer than every timeout configured below
        return web.Response(text="too late")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/index.atom", self._index)
        app.router.add_get("/cap/{name}", self._doc)
        app.router.add_get("/slow", self._slow)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> FeedServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def atom_index(entries: list[tuple[str, str]]) -> bytes:
    """The real NWS index (weather_index.atom) with its entries replaced by (id, link) entries of the
    same structure."""
    doc = sample("weather_index.atom")
    template = re.search(r"<entry>.*?</entry>", doc, re.S).group(0)
    blocks = []
    for ident, link in entries:
        block = re.sub(r"<id>.*?</id>", f"<id>{ident}</id>", template, flags=re.S)
        block = re.sub(r"<link href='[^']*'/>", f"<link href='{link}'/>", block)
        blocks.append(block)
    head, tail = doc.split("<entry>", 1)[0], doc.rsplit("</entry>", 1)[1]
    return (head + "\n".join(blocks) + tail).encode()


def write_frames(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for k in range(count):
        img = rng.integers(60, 120, size=(240, 320, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{k:03d}.jpg"), img)
    return folder


def interval(edge: EdgeProcess, camera: str, hazard: str) -> float | None:
    m = re.search(
        rf'hazardwatch_edge_patrol_interval_seconds{{camera="{camera}",hazard="{hazard}"}} ([0-9.e+-]+)',
        edge.get_text("/metrics"),
    )
    return float(m.group(1)) if m else None


def rates(edges: dict[str, EdgeProcess], hazard: str) -> dict[str, float | None]:
    return {cam: interval(edges[e], cam, hazard) for (e, cam) in CAMS}


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} ([0-9.e+-]+)$", text, re.M) if labels else None
    if m is None and not labels:
        m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def central_metrics(central: CentralProcess) -> str:
    import urllib.request

    with urllib.request.urlopen(central.url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def push(central: CentralProcess, body: bytes, token: str | None = OPERATOR) -> tuple[int, dict | str]:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(central.url + "/api/v1/warnings", data=body, method="POST")
    req.add_header("Content-Type", "application/cap+xml")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


def sent_of(xml: str) -> str:
    return re.search(r"<sent>(.*?)</sent>", xml).group(1)


@pytest.mark.mqtt
@pytest.mark.slow
def test_warnings_from_a_real_feed_drive_the_patrol_of_running_edges(tmp_path, mosquitto):
    now = time.time()
    canada = sample("canada.cap")
    alert = rewrite(canada, now=now, identifier="hw-test-a", msg_type="Alert", references="", polygon=BOTH)
    ref_a = f"cap@ec.gc.ca,hw-test-a,{sent_of(alert)}"
    update = rewrite(canada, now=now, identifier="hw-test-u", msg_type="Update", references=ref_a, polygon=ONE)
    ref_u = f"cap@ec.gc.ca,hw-test-u,{sent_of(update)}"
    cancel = rewrite(canada, now=now, identifier="hw-test-c", msg_type="Cancel", references=ref_u, polygon=ONE)

    server = FeedServer().start()
    server.docs = {
        "alert.cap": alert.encode(),
        "update.cap": update.encode(),
        "cancel.cap": cancel.encode(),
        "xee.cap": sample("xee.cap").encode(),  # real XXE / external-DTD attack sample
        "bomb.cap": BILLION_LAUGHS,
        "garbage.cap": b"\x89PNG\r\n\x1a\n not xml at all <<<",
        "big.cap": b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">' + b" " * (1536 * 1024) + b"</alert>",
        "noaa_errors.cap": sample("noaa_errors.cap").encode(),  # real, deliberately broken
    }
    hostile = [
        ("urn:test:xee", server.url("/cap/xee.cap")),
        ("urn:test:bomb", server.url("/cap/bomb.cap")),
        ("urn:test:garbage", server.url("/cap/garbage.cap")),
        ("urn:test:big", server.url("/cap/big.cap")),
        ("urn:test:noaa", server.url("/cap/noaa_errors.cap")),
        ("urn:test:slow", server.url("/slow")),
        ("urn:test:elsewhere", "http://www.weather.gov/alerts-beta/wwacapget.php?x=1"),
    ]
    server.index = atom_index([*hostile, ("urn:test:a", server.url("/cap/alert.cap"))])

    # Two edges, three cameras watching waterlogging and smoke (toy models; plain image folders).
    frames = write_frames(tmp_path / "frames")
    models = [
        {"manifest": str(red_patch_manifest(tmp_path / "m-wl", name="wl", hazard="waterlogging")), "threads": 1},
        {"manifest": str(red_patch_manifest(tmp_path / "m-sm", name="sm", hazard="smoke")), "threads": 1},
    ]
    hazards = {"waterlogging": {"interval_s": BASE_S}, "smoke": {"interval_s": BASE_S}}
    edges: dict[str, EdgeProcess] = {}
    for edge_id in ("edge-a", "edge-b"):
        cams = [
            {
                "id": cam,
                "source": str(frames),
                "hazards": hazards,
                "location": {"lat": CAMS[(e, cam)][0], "lon": CAMS[(e, cam)][1]},
            }
            for (e, cam) in CAMS
            if e == edge_id
        ]
        (tmp_path / edge_id).mkdir()
        cfg = write_edge_config(
            tmp_path / edge_id / "edge.yaml",
            broker_port=mosquitto.port,
            cameras=cams,
            manifest=Path(models[0]["manifest"]),
            edge_id=edge_id,
            models=models,
        )
        edges[edge_id] = EdgeProcess(cfg, tmp_path / edge_id / "edge.log").start()
    weather = {
        "enabled": True,
        "reconcile_s": 1,
        "feeds": [
            {"name": "index", "url": server.url("/index.atom"), "poll_s": 1, "timeout_s": 2, "max_backoff_s": 4},
            {"name": "down", "url": f"http://127.0.0.1:{free_port()}/cap.xml", "poll_s": 1, "timeout_s": 1},
            {"name": "slow", "url": server.url("/slow"), "poll_s": 1, "timeout_s": 1, "max_backoff_s": 2},
        ],
        "rules": RULES,
        "cameras": [{"edge_id": e, "camera_id": c, "lat": lat, "lon": lon} for (e, c), (lat, lon) in CAMS.items()],
    }
    config = write_central_config(
        tmp_path / "central.yaml",
        broker_port=mosquitto.port,
        database_url=f"sqlite:///{tmp_path / 'central.db'}",
        weather=weather,
    )
    central = CentralProcess(config, tmp_path / "central.log")
    try:
        for edge in edges.values():
            wait_until(lambda edge=edge: edge.get_json("/healthz")["mqtt_connected"], 20, "edge connected")
        assert rates(edges, "waterlogging") == {"cam-1": BASE_S, "cam-2": BASE_S, "cam-3": BASE_S}
        started = time.monotonic()
        central.start()

        # 1. The Alert covers cam-1 (edge-a) and cam-3 (edge-b): exactly those two speed up.
        raised = {"cam-1": HIGH_S, "cam-2": BASE_S, "cam-3": HIGH_S}
        wait_until(lambda: rates(edges, "waterlogging") == raised, 20, "cam-1 and cam-3 raised")
        took = time.monotonic() - started
        assert edges["edge-a"].camera("cam-1")["hazards"]["waterlogging"] == {"interval_s": HIGH_S, "risk": "high"}
        assert edges["edge-a"].camera("cam-2")["hazards"]["waterlogging"] == {"interval_s": BASE_S, "risk": "normal"}
        assert edges["edge-b"].camera("cam-3")["hazards"]["waterlogging"]["risk"] == "high"
        assert rates(edges, "smoke") == {"cam-1": BASE_S, "cam-2": BASE_S, "cam-3": BASE_S}  # not a fire warning
        watch = central.get("/api/v1/watch")["items"]
        assert {(w["edge_id"], w["camera_id"], w["hazard"], w["level"]) for w in watch} == {
            ("edge-a", "cam-1", "waterlogging", "high"),
            ("edge-b", "cam-3", "waterlogging", "high"),
        }
        assert all(w["delivered"] and abs(w["until"] - (now + 3600)) < 2 for w in watch)
        assert watch[0]["warnings"][0]["event"] == "thunderstorm"
        assert central.get("/api/v1/watch", token=VIEWER)["items"]  # viewers may look

        # 2. The Update narrows it to cam-1: cam-3 falls back, cam-1 stays raised.
        server.index = atom_index(
            [*hostile, ("urn:test:a", server.url("/cap/alert.cap")), ("urn:test:u", server.url("/cap/update.cap"))]
        )
        lowered = {"cam-1": HIGH_S, "cam-2": BASE_S, "cam-3": BASE_S}
        wait_until(lambda: rates(edges, "waterlogging") == lowered, 20, "the update narrowed the watch to cam-1")
        assert edges["edge-b"].camera("cam-3")["hazards"]["waterlogging"]["risk"] == "normal"

        # 3. The Cancel restores every camera.
        server.index = atom_index(
            [
                *hostile,
                ("urn:test:a", server.url("/cap/alert.cap")),
                ("urn:test:u", server.url("/cap/update.cap")),
                ("urn:test:c", server.url("/cap/cancel.cap")),
            ]
        )
        normal = {"cam-1": BASE_S, "cam-2": BASE_S, "cam-3": BASE_S}
        wait_until(lambda: rates(edges, "waterlogging") == normal, 20, "the cancel restored every camera")
        states = {w["identifier"]: w["state"] for w in central.get("/api/v1/warnings")["items"]}
        assert states == {"hw-test-a": "replaced", "hw-test-u": "cancelled", "hw-test-c": "cancelled"}
        assert central.get("/api/v1/watch")["items"] == []

        # 4. Pushed by the command platform: a real NSW RFS fire message (circle) over cam-2, expiring in 8 s.
        fire = rewrite(
            sample("australia.cap"),
            now=time.time(),
            identifier="rfs-test-1",
            expires_in=8,
            circle=(*CAMS[("edge-a", "cam-2")], 5.0),
        )
        assert push(central, fire.encode(), token=VIEWER)[0] == 403
        assert push(central, fire.encode(), token=None)[0] == 401
        status, body = push(central, fire.encode(), token=OPERATOR)
        assert status == 201 and body["result"] == "started", body
        assert [(w["camera_id"], w["hazard"], w["level"]) for w in body["watch"]] == [("cam-2", "smoke", "high")]
        wait_until(lambda: interval(edges["edge-a"], "cam-2", "smoke") == HIGH_S, 10, "cam-2 smoke raised")
        assert rates(edges, "smoke") == {"cam-1": BASE_S, "cam-2": HIGH_S, "cam-3": BASE_S}
        assert push(central, fire.encode(), token=ADMIN)[1]["result"] == "duplicate"
        # ... and its expiry restores it (central marks it expired and tells the edge).
        wait_until(lambda: interval(edges["edge-a"], "cam-2", "smoke") == BASE_S, 20, "expiry restored cam-2")
        wait_until(
            lambda: (
                {w["identifier"]: w["state"] for w in central.get("/api/v1/warnings")["items"]}["rfs-test-1"]
                == "expired"
            ),
            5,
            "the pushed warning marked expired",
        )

        # 5. Hostile pushes: refused with a reason, no effect.
        for doc, code in (
            (sample("xee.cap").encode(), 400),
            (BILLION_LAUGHS, 400),
            (b"garbage", 400),
            (b"<a>" + b" " * (1100 * 1024) + b"</a>", 413),
        ):
            status, body = push(central, doc)
            assert status == code, (status, body)
        # A large but legal document (300 KB, over the API's 64 KiB JSON limit) is read whole; a Test
        # message is recorded and never acts.
        big = rewrite(canada, now=time.time(), identifier="hw-big", msg_type="Alert", references="", polygon=BOTH)
        big = big.replace("<status>Actual</status>", "<status>Test</status>")
        big = big.replace("<description>", "<description>" + "rain " * 60_000, 1)
        status, body = push(central, big.encode())
        assert status == 201 and body["result"] == "ignored" and "Test" in body["reason"], body
        assert central.get("/api/v1/watch")["items"] == []
        assert rates(edges, "waterlogging") == normal and rates(edges, "smoke") == normal

        # Everything hostile was logged and counted, and central stayed responsive throughout.
        text = central_metrics(central)
        for reason in ("forbidden", "malformed", "oversized", "invalid", "link_refused"):
            assert metric(text, "hazardwatch_central_weather_rejected_total", reason=reason) >= 1, reason
        assert metric(text, "hazardwatch_central_weather_fetch_total", feed="down", result="unreachable") >= 2
        assert metric(text, "hazardwatch_central_weather_fetch_total", feed="slow", result="timeout") >= 2
        assert metric(text, "hazardwatch_central_weather_fetch_total", feed="index", result="timeout") >= 1
        assert metric(text, "hazardwatch_central_weather_commands_total", result="sent") >= 5
        assert server.not_modified >= 1  # conditional requests: an unchanged index costs a 304
        assert server.hits["bomb.cap"] == 1 and server.hits["xee.cap"] == 1  # rejected for good, not refetched
        rejected = central.get("/api/v1/warnings")["rejected"]
        assert {r["code"] for r in rejected} >= {"forbidden", "malformed", "oversized", "invalid"}
        log = central.log()
        assert "rejected (forbidden)" in log and "did not answer within" in log
        history = central.get("/api/v1/watch")["history"]
        assert len(history) >= 6  # every change recorded: 2 raised, 1 narrowed, 1 cancelled, 1 fire, 1 expiry
        print(f"central start -> feed polled -> both edges raised in {took:.1f} s")
    finally:
        central.stop() if central.proc else None
        for edge in edges.values():
            edge.stop()
        server.stop()


def test_weather_endpoints_answer_404_when_disabled(tmp_path):
    config = write_central_config(
        tmp_path / "central.yaml", broker_port=None, database_url=f"sqlite:///{tmp_path / 'c.db'}"
    )
    with CentralProcess(config, tmp_path / "central.log") as central:
        assert central.request("GET", "/api/v1/watch")[0] == 404
        assert central.request("GET", "/api/v1/warnings")[0] == 404


# -- the lifecycle on both stores (service level) -----------------------------------------------------
def test_risk_computation_on_sqlite_and_postgres(database_url):
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.central.store import Database
    from hazardwatch.central.warnings.service import WeatherService

    cfg = CentralConfig.model_validate(
        {
            "broker": None,
            "database": {"url": database_url},
            "weather": {
                "enabled": True,
                "rules": RULES,
                "cameras": [{"edge_id": e, "camera_id": c, "lat": a, "lon": b} for (e, c), (a, b) in CAMS.items()],
                "geocodes": [
                    {"value_name": "profile:CAP-CP:Location:0.3", "value": "3537001", "cameras": ["edge-a/cam-2"]}
                ],
            },
        }
    )
    db = Database(database_url)
    db.migrate()
    sent = []
    svc = WeatherService(cfg, db, lambda edge, payload: sent.append(parse_message(payload)) or True)
    try:
        now = time.time()
        canada = sample("canada.cap")  # its areas carry CAP-CP geocode 3537001, mapped to cam-2 above
        alert = rewrite(canada, now=now, identifier="pg-a", msg_type="Alert", references="", polygon=BOTH)
        assert svc.ingest(alert.encode(), "t").result == "started"
        got = {(c.edge_id, tuple(c.cameras), c.level.value) for c in sent}
        assert got == {("edge-a", ("cam-1", "cam-2"), "high"), ("edge-b", ("cam-3",), "high")}
        sent.clear()
        ref = f"cap@ec.gc.ca,pg-a,{sent_of(alert)}"
        update = rewrite(canada, now=now, identifier="pg-u", msg_type="Update", references=ref, polygon=ONE)
        assert svc.ingest(update.encode(), "t").result == "replaced"
        assert [(c.edge_id, tuple(c.cameras), c.level.value) for c in sent] == [("edge-b", ("cam-3",), "normal")]
        sent.clear()
        svc.tick(now + 3601)  # expiry
        assert {(c.edge_id, tuple(c.cameras), c.level.value) for c in sent} == {
            ("edge-a", ("cam-1", "cam-2"), "normal")
        }
        assert svc.watch()["items"] == []
        states = {w["identifier"]: w["state"] for w in svc.warnings(None, 10)["items"]}
        assert states == {"pg-a": "replaced", "pg-u": "expired"}
    finally:
        db.close()
