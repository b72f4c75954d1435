"""The service itself: health, Prometheus metrics, the OpenAPI document, login and who am I, and the
server-sent event stream the dashboard listens to."""

from __future__ import annotations

import asyncio
from importlib import resources

import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from hazardwatch.central.api.auth import COOKIE
from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import Route, body_model, principal, problem
from hazardwatch.central.services import health, views
from hazardwatch.central.services.events import CLOSE

INCIDENT_STATES = ("open", "acknowledged", "resolved", "false_alarm")
KEEPALIVE_S = 15
LOGIN_COOKIE_S = 12 * 3600


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=512)


def openapi_text() -> str:
    return resources.files("hazardwatch.central.api").joinpath("openapi.yaml").read_text(encoding="utf-8")


async def openapi_yaml(request: web.Request) -> web.Response:
    return web.Response(text=openapi_text(), content_type="application/yaml")


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(yaml.safe_load(openapi_text()))


async def healthz(request: web.Request) -> web.Response:
    ctx = context(request)
    try:
        await ctx.run(health.ping)
        db_ok = True
    except Exception:
        db_ok = False
    return web.json_response(
        {
            "status": "ok" if db_ok else "degraded",
            "database": db_ok,
            "mqtt": ctx.mqtt_state(),
            "instance_id": ctx.cfg.instance_id,
        },
        status=200 if db_ok else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    counts = await ctx.run(views.incident_counts)
    for state in INCIDENT_STATES:
        ctx.metrics.incidents.labels(state).set(counts.get(state, 0))
    body = b"".join(generate_latest(r) for r in [ctx.metrics.registry, *ctx.extra_registries])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def login(request: web.Request) -> web.Response:
    ctx = context(request)
    client = request.remote or "?"
    if ctx.limiter.blocked(client):
        raise problem(429, "too many failed logins; wait a minute")
    body = await body_model(request, LoginBody)
    who = ctx.tokens.lookup(body.token)
    if who is None:
        ctx.limiter.fail(client)
        raise problem(401, "unknown token")
    resp = web.json_response({"name": who.name, "role": who.role})
    resp.set_cookie(COOKIE, body.token, httponly=True, samesite="Strict", max_age=LOGIN_COOKIE_S)
    return resp


async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    ctx = context(request)
    return web.json_response({"name": who.name, "role": who.role, "site": ctx.cfg.site, "timezone": ctx.cfg.timezone})


async def events(request: web.Request) -> web.StreamResponse:
    hub = context(request).events
    assert hub is not None, "the service starts the event hub before serving"
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    q = hub.subscribe()
    try:
        await resp.write(b": connected\n\n")
        while True:
            try:
                frame = await asyncio.wait_for(q.get(), KEEPALIVE_S)
            except TimeoutError:
                frame = ": keepalive\n\n"
            if frame == CLOSE:  # shutting down, or too slow to keep up: the page reconnects and reloads
                break
            await resp.write(frame.encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(q)
    return resp


ROUTES: list[Route] = [
    ("GET", "/healthz", healthz),
    ("GET", "/metrics", metrics),
    ("GET", "/api/v1/openapi.yaml", openapi_yaml),
    ("GET", "/api/v1/openapi.json", openapi_json),
    ("POST", "/api/v1/login", login),
    ("GET", "/api/v1/me", whoami),
    ("GET", "/api/v1/events", events),
]
