"""The edge's small HTTP server: health, Prometheus metrics and camera status for field engineers."""

from __future__ import annotations

import cv2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hazardwatch.edge.engine import EdgeEngine, views

ENGINE = web.AppKey("engine", EdgeEngine)


async def healthz(request: web.Request) -> web.Response:
    body, status = views.health(request.app[ENGINE])
    return web.json_response(body, status=status)


async def metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    views.refresh_metrics(engine)
    body = generate_latest(engine.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def cameras(request: web.Request) -> web.Response:
    return web.json_response({"cameras": views.camera_views(request.app[ENGINE])})


async def camera_snapshot(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    cam = engine.cameras.get(request.match_info["camera_id"])
    if cam is None:
        raise web.HTTPNotFound(text="no such camera")
    if cam.preview is None:
        raise web.HTTPNotFound(text="no frame yet")
    ok, buf = cv2.imencode(".jpg", cam.preview, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise web.HTTPInternalServerError(text="JPEG encoding failed")
    return web.Response(body=buf.tobytes(), content_type="image/jpeg")


def make_app(engine: EdgeEngine) -> web.Application:
    app = web.Application()
    app[ENGINE] = engine
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/cameras", cameras)
    app.router.add_get("/api/cameras/{camera_id}/snapshot.jpg", camera_snapshot)
    return app


async def start_http(engine: EdgeEngine) -> tuple[web.AppRunner, int]:
    """Start the server; return the runner (for cleanup) and the bound port."""
    runner = web.AppRunner(make_app(engine), access_log=None)
    await runner.setup()
    # SO_REUSEADDR: a restart gets its port back though old connections sit in TIME_WAIT.
    site = web.TCPSite(runner, engine.cfg.http.host, engine.cfg.http.port, reuse_address=True)
    await site.start()
    addresses = runner.addresses  # what the site bound: port 0 asks the OS for a free one
    port = int(addresses[0][1]) if addresses else engine.cfg.http.port
    return runner, port
