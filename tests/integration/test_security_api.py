"""The central API and webhook as an attacker meets them, on real processes: roles, brute force, secrets in
logs, capability URLs for evidence, body limits and content types, and webhook signatures checked by a
receiver (including a replay with an old timestamp)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import math
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from hazardwatch.central.notify.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from hazardwatch.harness.central_proc import (
    ADMIN,
    OPERATOR,
    VIEWER,
    CentralProcess,
    Publisher,
    alert_payload,
    alert_topic,
    write_central_config,
)
from hazardwatch.harness.edge_proc import EdgeProcess, wait_until, write_edge_config
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.harness.toy_models import red_patch_manifest
from hazardwatch.procs import free_port, mosquitto_binary, wait_port

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9").decode()
WEBHOOK_SECRET = "whsec-Zq81-do-not-log"


def raw(central: CentralProcess, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(central.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture
def central(tmp_path, mosquitto):
    cfg = write_central_config(
        tmp_path / "central.yaml", broker_port=mosquitto.port, database_url=f"sqlite:///{tmp_path / 'c.db'}",
        auth={"tokens": [
            {"name": "amy", "role": "operator", "token": {"value": OPERATOR}},
            {"name": "wall", "role": "viewer", "token": {"value": VIEWER}},
            {"name": "root", "role": "admin", "token": {"value": ADMIN}},
        ], "login_rate_per_min": 5},
    )
    with CentralProcess(cfg, tmp_path / "central.log") as proc:
        yield proc


def test_roles_decide_what_a_token_may_do(central, mosquitto):
    pub = Publisher(mosquitto.port)
    try:
        pub.send(alert_topic(), alert_payload(0))
    finally:
        pub.close()
    iid = wait_until(lambda: central.get("/api/v1/incidents")["items"], 15, "an incident")[0]["id"]
    assert central.request("GET", "/api/v1/incidents", token=None)[0] == 401
    assert central.request("GET", "/api/v1/incidents", token="op-token-012345678")[0] == 401  # one char short
    status, body = central.request("GET", "/api/v1/me", token=VIEWER)
    assert (status, body["role"]) == (200, "viewer")
    assert central.request("POST", f"/api/v1/incidents/{iid}/acknowledge", {}, token=VIEWER)[0] == 403
    assert central.request("POST", "/api/v1/silences", {"comment": "x", "duration_s": 60}, token=VIEWER)[0] == 403
    assert central.request("POST", "/api/v1/deliveries/1/retry", {}, token=OPERATOR)[0] == 403  # admin only
    status, body = central.request("POST", f"/api/v1/incidents/{iid}/acknowledge", {"note": "seen"}, token=OPERATOR)
    assert status == 200 and body["acknowledged_by"] == "amy"  # the action is recorded under the token's name
    assert central.request("POST", "/api/v1/deliveries/999/retry", {}, token=ADMIN)[0] == 404
    # The dashboard's cookie: HttpOnly (no script can read it) and SameSite=Strict (no cross-site request).
    status, headers, _ = raw(central, "POST", "/api/v1/login", json.dumps({"token": VIEWER}).encode(),
                             {"Content-Type": "application/json"})
    cookie = headers.get("Set-Cookie", "")
    assert status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _, body = raw(central, "GET", "/api/v1/me", headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and json.loads(body)["role"] == "viewer"


def test_guessing_tokens_is_rate_limited_on_login_and_on_the_header(central):
    for _ in range(5):
        assert central.request("POST", "/api/v1/login", {"token": "guess-000"}, token=None)[0] == 401
    # Blocked now, even with the right token: an attacker cannot tell a hit from a miss.
    assert central.request("POST", "/api/v1/login", {"token": OPERATOR}, token=None)[0] == 429
    assert central.request("GET", "/api/v1/incidents", token="guess-001")[0] == 429
    assert central.request("GET", "/api/v1/incidents", token=OPERATOR)[0] == 429
    assert central.request("GET", "/healthz", token=None)[0] == 200  # public paths stay up


def test_bearer_guessing_alone_is_rate_limited(tmp_path, mosquitto):
    """Before the fix only /login counted failures: the Authorization header allowed unlimited guesses."""
    cfg = write_central_config(tmp_path / "c.yaml", broker_port=None, database_url=f"sqlite:///{tmp_path / 'c.db'}")
    with CentralProcess(cfg, tmp_path / "c.log") as central:
        statuses = Counter(central.request("GET", "/api/v1/incidents", token=f"guess-{k}")[0] for k in range(40))
        assert statuses[401] == 20 and statuses[429] == 20, statuses


def test_evidence_urls_are_unguessable_capabilities(central, mosquitto):
    pub = Publisher(mosquitto.port)
    try:
        for k in range(4):
            pub.send(alert_topic(f"e{k}", "c"),
                     alert_payload(0, edge=f"e{k}", cam="c", alert_id=f"alert-ev-{k:04d}", lat=10 + 5 * k,
                                   snapshot=JPEG))
        # A hostile edge sends HTML as its "JPEG": the alert is kept, the evidence is not stored.
        html = base64.b64encode(b"<html><script>alert(1)</script></html>").decode()
        pub.send(alert_topic("e9", "c"), alert_payload(0, edge="e9", cam="c", alert_id="alert-ev-html", lat=-50,
                                                       snapshot=html))
        pub.send(alert_topic("e8", "c"), alert_payload(0, edge="e8", cam="c", alert_id="alert-ev-junk", lat=-60,
                                                       snapshot="not base64 at all!"))
    finally:
        pub.close()
    wait_until(lambda: central.get("/api/v1/incidents")["total"] == 6, 20, "six incidents")
    urls = []
    for item in central.get("/api/v1/incidents")["items"]:
        detail = central.get(f"/api/v1/incidents/{item['id']}")
        edge = detail["cameras"][0]["edge_id"]
        if edge in ("e8", "e9"):
            assert detail["evidence"] == [], "a non-JPEG snapshot was stored as evidence"
        else:
            urls.extend(e["url"] for e in detail["evidence"])
    assert len(urls) == 4
    ids = [u.rsplit("/", 1)[1].removesuffix(".jpg") for u in urls]
    assert len(set(ids)) == 4
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    for eid in ids:
        assert len(eid) >= 32 and set(eid) <= alphabet  # 32 url-safe base64 characters = 192 random bits
    # Character statistics over all ids look random (no counter, no timestamp prefix).
    assert len({eid[:4] for eid in ids}) == 4
    counts = Counter("".join(ids))
    entropy = -sum(c / sum(counts.values()) * math.log2(c / sum(counts.values())) for c in counts.values())
    assert entropy > 5.0, f"id characters carry only {entropy:.2f} bits each"
    path = urllib.parse.urlsplit(urls[0]).path
    status, headers, body = raw(central, "GET", path)  # no token needed: the URL is the capability
    assert status == 200 and body[:3] == b"\xff\xd8\xff" and headers.get("X-Content-Type-Options") == "nosniff"
    eid = ids[0]
    flip = "A" if eid[-1] != "A" else "B"
    neighbours = [eid[:-1] + flip, eid[:-1], eid + "A", eid.upper(), eid.lower(), "1", "../" + eid, "%2e%2e%2f" + eid,
                  eid + "%00", "' OR '1'='1"]
    for guess in neighbours:
        status, _, _ = raw(central, "GET", "/api/v1/evidence/" + urllib.parse.quote(guess, safe="%/") + ".jpg")
        assert status == 404, (guess, status)


def test_bodies_are_size_limited_and_type_checked(central):
    big = json.dumps({"note": "x" * 70_000}).encode()
    status, _, body = raw(central, "POST", "/api/v1/incidents/1/acknowledge", big,
                          {"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"})
    assert status == 413, body[:200]
    status, _, _ = raw(central, "POST", "/api/v1/login", b"{" + b" " * 200_000 + b"}",
                       {"Content-Type": "application/json"})
    assert status == 413
    # A chunked body without a Content-Length is cut at the limit too.
    parts = urllib.parse.urlsplit(central.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", "/api/v1/silences")
    conn.putheader("Authorization", f"Bearer {OPERATOR}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for _ in range(40):
            chunk = b"x" * 4096
            conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        conn.send(b"0\r\n\r\n")
        assert conn.getresponse().status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server hung up on the oversized body: also a refusal
    finally:
        conn.close()
    # Not JSON, a JSON list, a note of the wrong type: 400 with a reason, never 500.
    for payload in (b"not json", b"[]", b'{"note": 5}', b'{"note": "ok", "extra": 1}', b"\xff\xfe"):
        status, _, body = raw(central, "POST", "/api/v1/silences", payload,
                              {"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"})
        assert status == 400, (payload, status, body[:200])


def test_no_secret_reaches_a_log(tmp_path):
    """Tokens, the broker password, the webhook secret and camera credentials, used for real in one run."""
    if mosquitto_binary() is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto / mosquitto_passwd not found")
    broker_pw = "brk-pw-Tq93-do-not-log"
    cam_pw = "cam-pw-Lw27-do-not-log"
    pwfile = tmp_path / "passwords"
    pwfile.touch()
    for user in ("edge-test", "central"):
        subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, broker_pw], check=True)
    broker = MosquittoBroker(workdir=tmp_path / "mq", extra_config=f"allow_anonymous false\npassword_file {pwfile}")
    hook_port = free_port()
    received: list[bytes] = []
    with broker:
        server = _Hook(hook_port, received).start()
        try:
            cfg = write_central_config(
                tmp_path / "central.yaml", broker_port=broker.port, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                receiver_url=f"http://127.0.0.1:{hook_port}/hook",
            )
            doc = yaml.safe_load(cfg.read_text())
            doc["broker"].update(username="central", password={"value": broker_pw})
            doc["receivers"][0]["secret"] = {"value": WEBHOOK_SECRET}
            cfg.write_text(yaml.safe_dump(doc))
            manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
            scene = tmp_path / "scene"
            _red_scene(scene)
            cams = [
                {"id": "cam-ok", "source": str(scene), "hazards": {"fire": {}}},
                {"id": "cam-auth", "source": f"rtsp://admin:{cam_pw}@127.0.0.1:{free_port()}/stream",
                 "hazards": {"fire": {}}},
            ]
            ecfg = write_edge_config(tmp_path / "edge.yaml", broker_port=broker.port, cameras=cams, manifest=manifest,
                                     confirm={"window": 2, "min_votes": 2, "threshold": 0.5, "end_after_s": 2})
            edoc = yaml.safe_load(ecfg.read_text())
            edoc["broker"].update(username="edge-test", password={"value": broker_pw})
            ecfg.write_text(yaml.safe_dump(edoc))
            with CentralProcess(cfg, tmp_path / "central.log") as central, \
                    EdgeProcess(ecfg, tmp_path / "edge.log") as edge:
                wait_until(lambda: received, 40, "a signed notification from a real edge alert")
                wait_until(lambda: edge.camera("cam-auth")["failures"] >= 1, 20, "the camera with credentials tried")
                cams_view = json.dumps(edge.get_json("/api/cameras"))
                assert cam_pw not in cams_view and "admin:" not in cams_view
                for token in (OPERATOR, VIEWER, ADMIN):
                    central.request("POST", "/api/v1/login", {"token": token}, token=None)
                    central.request("GET", "/api/v1/incidents", token=token)
                central.request("POST", "/api/v1/login", {"token": OPERATOR + "x"}, token=None)
                central.request("GET", "/api/v1/incidents", token=ADMIN[:-1])
                metrics = central.request("GET", "/metrics", token=None)[1] + edge.get_text("/metrics")
        finally:
            server.stop()
        broker_log = broker.log_text()
    secrets = {"operator token": OPERATOR, "viewer token": VIEWER, "admin token": ADMIN, "broker password": broker_pw,
               "webhook secret": WEBHOOK_SECRET, "camera password": cam_pw}
    texts = {"central log": (tmp_path / "central.log").read_text(), "edge log": (tmp_path / "edge.log").read_text(),
             "broker log": broker_log, "metrics": metrics}
    assert "cam-auth" in texts["edge log"]  # the failing camera was logged, so the scan means something
    for where, text in texts.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} appears in the {where}"
            assert secret[:-1] not in text, f"a near-copy of the {what} appears in the {where}"


def _red_scene(folder: Path) -> None:
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    for k in range(4):
        img = np.full((240, 320, 3), 100, np.uint8)
        if k < 2:
            img[90:150, 140:200] = (0, 0, 255)
        cv2.imwrite(str(folder / f"{k}.jpg"), img)


class _Hook:
    """A minimal signed-webhook receiver in a thread: records raw bodies with valid signatures."""

    def __init__(self, port: int, received: list[bytes]) -> None:
        self.port, self.received = port, received
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(WEBHOOK_SECRET, request.headers.get(TIMESTAMP_HEADER), body,
                                request.headers.get(SIGNATURE_HEADER)):
            return web.Response(status=401)
        self.received.append(body)
        return web.Response(status=204)

    def start(self) -> _Hook:
        async def setup() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            return runner

        self._thread.start()
        self._runner = asyncio.run_coroutine_threadsafe(setup(), self._loop).result(10)
        wait_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class _StrictReceiver:
    """The receiver of docs/webhook.md: verify before parsing, 2 s tolerance (so the test need not wait 5
    minutes for a timestamp to go stale), act once per Idempotency-Key."""

    def __init__(self, secret: str, tolerance_s: float) -> None:
        self.secret, self.tolerance_s = secret, tolerance_s
        self.captured: list[tuple[dict[str, str], bytes]] = []
        self.acted: list[str] = []
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        if not verify_signature(self.secret, headers.get(TIMESTAMP_HEADER), body, headers.get(SIGNATURE_HEADER),
                                tolerance_s=self.tolerance_s):
            self.refused += 1
            return web.Response(status=401, text="bad signature")
        self.captured.append((headers, body))
        key = headers[IDEMPOTENCY_HEADER]
        if key not in self.acted:
            self.acted.append(key)
        return web.Response(status=204)


def test_receiver_rejects_forged_tampered_and_replayed_webhooks(tmp_path, mosquitto):
    port = free_port()
    strict = _StrictReceiver(WEBHOOK_SECRET, tolerance_s=2)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def setup() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", strict.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(setup(), loop).result(10)
    try:
        cfg = write_central_config(
            tmp_path / "central.yaml", broker_port=mosquitto.port, database_url=f"sqlite:///{tmp_path / 'c.db'}",
            receiver_url=f"http://127.0.0.1:{port}/hook",
        )
        doc = yaml.safe_load(cfg.read_text())
        doc["receivers"][0]["secret"] = {"value": WEBHOOK_SECRET}
        cfg.write_text(yaml.safe_dump(doc))
        with CentralProcess(cfg, tmp_path / "central.log"):
            pub = Publisher(mosquitto.port)
            try:
                pub.send(alert_topic(), alert_payload(0))
            finally:
                pub.close()
            wait_until(lambda: strict.captured, 20, "a real signed notification")
        headers, body = strict.captured[0]
        assert strict.refused == 0 and len(strict.acted) == 1

        def send(h: dict[str, str], b: bytes) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                keep = {k: v for k, v in h.items() if k.lower() not in ("host", "content-length", "transfer-encoding")}
                conn.request("POST", "/hook", body=b, headers=keep)
                return conn.getresponse().status
            finally:
                conn.close()

        assert send(headers, body) == 204 and len(strict.acted) == 1  # an immediate repeat: accepted, not acted on
        tampered = body.replace(b'"msg_type":"Alert"', b'"msg_type":"Cancel"')
        assert tampered != body and send(headers, tampered) == 401
        assert send({**headers, SIGNATURE_HEADER: "v1=" + "0" * 64}, body) == 401
        assert send({k: v for k, v in headers.items() if k != SIGNATURE_HEADER}, body) == 401
        time.sleep(3)  # the captured request goes stale
        assert send(headers, body) == 401, "a replay with an old timestamp was accepted"
        # Rewriting the timestamp to now breaks the signature, which covers it.
        assert send({**headers, TIMESTAMP_HEADER: str(int(time.time()))}, body) == 401
        assert strict.refused == 5 and len(strict.acted) == 1
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
