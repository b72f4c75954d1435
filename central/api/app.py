"""REST API under /api/v1 (aiohttp). Handlers parse and authorise; services do the work.

Every database call runs in a worker thread so the event loop never blocks. Authentication is a
bearer token (or the `hw_token` cookie set by /api/v1/login, for the dashboard and its event
stream); roles are viewer < operator < admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hazardwatch.central.api import dashboard
from hazardwatch.central.api.auth import COOKIE, Principal, RateLimiter, TokenBook
from hazardwatch.central.config import Area, CentralConfig
from hazardwatch.central.metrics import CentralMetrics
from hazardwatch.central.notify import queue as delivery_queue
from hazardwatch.central.services import incidents, silences, teach, views
from hazardwatch.central.store import Database
from hazardwatch.contract import Hazard

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiContext:
    cfg: CentralConfig
    db: Database
    tokens: TokenBook
    metrics: CentralMetrics
    extra_registries: list[Any] = field(default_factory=list)
    on_change: Callable[[], None] = lambda: None
    base_url: str = ""
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(20))
    events: EventHub | None = None
    mqtt_state: Callable[[], str] = lambda: "disabled"
    weather: Any = None  # hazardwatch.central.warnings.service.WeatherService when weather.enabled
    # Central -> edge commands over MQTT (False when not sent: no broker, or not acknowledged).
    publish_command: Callable[[str, bytes], bool] = lambda edge_id, payload: False

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        def work() -> Any:
            with self.db.tx() as tx:
                return fn(tx, *args)

        return await asyncio.to_thread(work)


CTX = web.AppKey("ctx", ApiContext)
PRINCIPAL = "principal"


class EventHub:
    """Server-sent events: polls the store for changed incidents (so changes made by any central
    instance reach every dashboard) and fans them out to subscribers."""

    def __init__(self, ctx: ApiContext, interval_s: float = 0.3) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._since = time.time()
        self._sent: dict[tuple, float] = {}
        self._wake = asyncio.Event()

    def subscribe(self) -> asyncio.Queue[str]:
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[str]) -> None:
        self._subscribers.discard(q)

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            if not self._subscribers:
                self._since = time.time() - 1
                continue
            since = self._since
            try:
                rows, _ = await self.ctx.run(views.list_incidents, views.IncidentFilter(since=since, limit=200))
                cams = [c for c in await self.ctx.run(views.cameras) if c["updated_at"] >= since]
            except Exception:
                log.exception("event hub poll failed")
                continue
            # `since` is inclusive (changes may share a timestamp), so remember what went out at it.
            for kind, items, key in (("incident", rows, "id"), ("camera", cams, "camera_id")):
                for item in items:
                    ident = (kind, item.get("edge_id"), item[key])
                    if self._sent.get(ident) == item["updated_at"]:
                        continue
                    self._sent[ident] = item["updated_at"]
                    self._since = max(self._since, item["updated_at"])
                    self._publish(kind, item)
            if len(self._sent) > 10_000:
                self._sent = {k: v for k, v in self._sent.items() if v >= self._since}

    def _publish(self, kind: str, data: dict) -> None:
        frame = f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        for q in list(self._subscribers):
            if q.full():  # a stalled client is dropped rather than growing memory
                self._subscribers.discard(q)
            else:
                q.put_nowait(frame)


# -- helpers -------------------------------------------------------------------------------------------
def problem(status: int, detail: str) -> web.HTTPException:
    body = json.dumps({"status": status, "detail": detail})
    cls = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        413: web.HTTPRequestEntityTooLarge,
        415: web.HTTPUnsupportedMediaType,
        429: web.HTTPTooManyRequests,
    }[status]
    if status == 413:
        return web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY, actual_size=0, text=body, content_type="application/json"
        )
    return cls(text=body, content_type="application/json")


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require(request: web.Request, role: str) -> Principal:
    who = principal(request)
    if not who.can(role):
        raise problem(403, f"{who.role} may not do this; {role} role required")
    return who


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or its first `limit + 1` bytes when it is longer (the caller refuses those).

    `StreamReader.read(n)` returns what has arrived so far, not n bytes: a large body read once
    is cut short and then fails to parse, so read until the end or past the limit.
    """
    body = bytearray()
    while len(body) <= limit and (part := await request.content.read(limit + 1 - len(body))):
        body += part
    return bytes(body)


async def body_model(request: web.Request, model: type[BaseModel]) -> Any:
    if request.content_length and request.content_length > MAX_BODY:
        raise problem(413, f"body over {MAX_BODY} bytes")
    raw = await read_body(request, MAX_BODY)
    if len(raw) > MAX_BODY:
        raise problem(413, f"body over {MAX_BODY} bytes")
    if raw and request.content_type != "application/json":  # no body at all means {} (every field optional)
        raise problem(415, f"Content-Type: application/json required, not {request.content_type}")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise problem(400, f"{where}: {err['msg']}") from None


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise problem(400, f"query parameter {name} must be an integer") from None
    if not lo <= value <= hi:
        raise problem(400, f"query parameter {name} must be between {lo} and {hi}")
    return value


def float_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise problem(400, f"query parameter {name} must be a number") from None
    if not math.isfinite(value):
        raise problem(400, f"query parameter {name} must be a finite number")
    return value


def bool_param(request: web.Request, name: str) -> bool:
    """`true` or `false` (absent: false); anything else is a 400, not a silent false."""
    raw = request.query.get(name)
    if raw not in (None, "true", "false"):
        raise problem(400, f"query parameter {name} must be true or false")
    return raw == "true"


def choice_param(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is not None and raw not in choices:
        raise problem(400, f"query parameter {name} must be one of {', '.join(choices)}")
    return raw


MAX_ROW_ID = 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT: no row has a larger id


def path_id(request: web.Request, name: str) -> int:
    """A numeric id from the path. Anything no row can have answers 404: the SQLite driver raises
    OverflowError (a 500) on integers past 64 bits, where PostgreSQL simply finds nothing."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_ROW_ID):
        raise problem(404, f"no such {name.removesuffix('_id')}")
    return int(raw)


def incident_id(request: web.Request) -> int:
    return path_id(request, "incident_id")


# -- request bodies ------------------------------------------------------------------------------------
class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)
    suppress_s: float | None = Field(
        default=None, ge=0, description="false-alarm only: how long to keep this camera and region quiet"
    )


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=512)


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edge_id: str | None = Field(default=None, max_length=64)
    camera_id: str | None = Field(default=None, max_length=64)
    hazard: Hazard | None = None
    area: Area | None = None
    starts_at: float | None = None
    ends_at: float | None = None
    duration_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    comment: str = Field(min_length=1, max_length=1000)


# -- middleware ----------------------------------------------------------------------------------------
PUBLIC = ("/healthz", "/metrics", "/api/v1/login", "/api/v1/openapi.yaml", "/api/v1/openapi.json")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path in PUBLIC or path.startswith("/api/v1/evidence/") or not path.startswith("/api/"):
        return await handler(request)
    ctx = request.app[CTX]
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else request.cookies.get(COOKIE)
    client = request.remote or "?"
    if token and ctx.limiter.blocked(client):  # guessing through the header is rate-limited like /login
        raise problem(429, "too many failed authentications; wait a minute")
    who = ctx.tokens.lookup(token)
    if who is None:
        if token:
            ctx.limiter.fail(client)
        raise problem(401, "a valid bearer token is required")
    if who.role == "edge" and not retraining.edge_may(path):  # edges only upload evidence and fetch models
        raise problem(403, "an edge token may only upload evidence and download models")
    request[PRINCIPAL] = who
    return await handler(request)


# -- handlers ------------------------------------------------------------------------------------------
async def login(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    client = request.remote or "?"
    if ctx.limiter.blocked(client):
        raise problem(429, "too many failed logins; wait a minute")
    body: LoginBody = await body_model(request, LoginBody)
    who = ctx.tokens.lookup(body.token)
    if who is None:
        ctx.limiter.fail(client)
        raise problem(401, "unknown token")
    resp = web.json_response({"name": who.name, "role": who.role})
    resp.set_cookie(COOKIE, body.token, httponly=True, samesite="Strict", max_age=12 * 3600)
    return resp


async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    ctx = request.app[CTX]
    return web.json_response({"name": who.name, "role": who.role, "site": ctx.cfg.site, "timezone": ctx.cfg.timezone})


async def list_incidents(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    f = views.IncidentFilter(
        state=choice_param(request, "state", ("open", "acknowledged", "resolved", "false_alarm")),
        hazard=request.query.get("hazard"),
        camera=request.query.get("camera"),
        since=float_param(request, "since"),
        limit=int_param(request, "limit", 50, 1, 500),
        offset=int_param(request, "offset", 0, 0, 10_000_000),
    )
    items, total = await ctx.run(views.list_incidents, f)
    return web.json_response({"items": items, "total": total, "limit": f.limit, "offset": f.offset})


async def get_incident(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    iid = incident_id(request)

    def load(tx: Any) -> dict | None:
        view = views.incident_view(tx, iid, ctx.base_url, ctx.cfg.site)
        if view is not None:
            view["timeline"] = views.timeline(tx, iid)
        return view

    view = await ctx.run(load)
    if view is None:
        raise problem(404, f"incident {iid} does not exist")
    return web.json_response(view)


async def _teach_edges(ctx: ApiContext, iid: int, actor: str, note: str) -> None:
    """A false alarm teaches each camera behind the incident its normal (central/services/teach.py)."""
    for cmd in await ctx.run(teach.learn_normal_commands, iid, actor, note):
        sent = await asyncio.to_thread(ctx.publish_command, cmd.edge_id, cmd.payload)
        ctx.metrics.learn_normal.labels("sent" if sent else "not_sent").inc()


def action_handler(action: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        ctx = request.app[CTX]
        who = require(request, "operator")
        iid = incident_id(request)
        body: NoteBody = await body_model(request, NoteBody)
        if action == "false_alarm" and not body.note.strip():
            raise problem(400, "note: say why this is a false alarm (cloud, fog, dust, vehicle, lights...)")
        fa = ctx.cfg.false_alarm
        suppress_s = fa.suppress_s if body.suppress_s is None else body.suppress_s
        if action == "false_alarm" and suppress_s > fa.max_suppress_s:
            raise problem(400, f"suppress_s: at most {fa.max_suppress_s:.0f} s (false_alarm.max_suppress_s)")
        try:
            await ctx.run(
                incidents.act, iid, action, who.name, body.note, time.time(), suppress_s,
                tuple(ctx.cfg.response.confirm_close),
            )
        except incidents.ActionError as exc:
            raise problem(exc.status, str(exc)) from None
        ctx.on_change()
        if action == "false_alarm":
            await _teach_edges(ctx, iid, who.name, body.note)
        view = await ctx.run(views.incident_view, iid, ctx.base_url, ctx.cfg.site)
        return web.json_response(view)

    return handle


async def list_silences(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    include = bool_param(request, "include_expired")
    items = await ctx.run(silences.listing, include, time.time())
    return web.json_response({"items": [s.as_dict() for s in items]})


async def create_silence(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    who = require(request, "operator")
    body: SilenceBody = await body_model(request, SilenceBody)
    now = time.time()
    starts = body.starts_at or now
    ends = body.ends_at or (starts + body.duration_s if body.duration_s else None)
    if ends is None:
        raise problem(400, "give ends_at or duration_s")
    try:
        s = await ctx.run(
            lambda tx: silences.create(
                tx,
                edge_id=body.edge_id,
                camera_id=body.camera_id,
                hazard=body.hazard.value if body.hazard else None,
                area=body.area,
                starts_at=starts,
                ends_at=ends,
                created_by=who.name,
                comment=body.comment,
                now=now,
            )
        )
    except ValueError as exc:
        raise problem(400, str(exc)) from None
    return web.json_response(s.as_dict(), status=201)


async def expire_silence(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    who = require(request, "operator")
    sid = path_id(request, "silence_id")
    if not await ctx.run(silences.expire, sid, who.name, time.time()):
        raise problem(404, f"silence {sid} does not exist or already expired")
    ctx.on_change()
    return web.json_response({"id": sid, "expired": True})


async def list_cameras(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.json_response({"items": await ctx.run(views.cameras)})


async def list_edges(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.json_response({"items": await ctx.run(views.edges)})


async def list_deliveries(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    state = request.query.get("state")
    if state not in (None, "pending", "delivered", "dead"):
        raise problem(400, "state must be pending, delivered or dead")
    limit = int_param(request, "limit", 100, 1, 1000)
    offset = int_param(request, "offset", 0, 0, 10_000_000)
    rows = await ctx.run(lambda tx: delivery_queue.list_deliveries(tx, state=state, limit=limit, offset=offset))
    counts = await ctx.run(delivery_queue.counts_by_state)
    items = [{k: v for k, v in dataclasses.asdict(d).items() if k not in ("payload", "lease_until")} for d in rows]
    return web.json_response({"items": items, "counts": counts})


async def retry_delivery(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    require(request, "admin")
    did = path_id(request, "delivery_id")
    if not await ctx.run(delivery_queue.retry_dead, did):
        raise problem(404, f"delivery {did} is not a dead letter")
    ctx.on_change()
    return web.json_response({"id": did, "state": "pending"})


async def evidence(request: web.Request) -> web.Response:
    """Evidence is reachable by its unguessable id (a capability URL receivers can fetch)."""
    ctx = request.app[CTX]
    eid = request.match_info["evidence_id"]
    if len(eid) > 64:
        raise problem(404, "no such evidence")
    row = await ctx.run(lambda tx: tx.one("SELECT content_type, data FROM evidence WHERE id = ?", (eid,)))
    if row is None:
        raise problem(404, "no such evidence")
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=bytes(row[1]), content_type=row[0], headers=headers)


async def events(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    assert ctx.events is not None
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    q = ctx.events.subscribe()
    try:
        await resp.write(b": connected\n\n")
        while True:
            try:
                frame = await asyncio.wait_for(q.get(), 15)
            except TimeoutError:
                frame = ": keepalive\n\n"
            await resp.write(frame.encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        ctx.events.unsubscribe(q)
    return resp


# -- weather warnings (central/warnings) ---------------------------------------------------------------
def _weather(request: web.Request) -> Any:
    ctx = request.app[CTX]
    if ctx.weather is None:
        raise problem(404, "weather warnings are not enabled (weather.enabled in the central config)")
    return ctx.weather


async def push_warning(request: web.Request) -> web.Response:
    """A CAP document pushed by the command platform; answers what it did (or why it was refused)."""
    from hazardwatch.central.warnings.cap_parse import CapError

    ctx = request.app[CTX]
    weather = _weather(request)
    who = require(request, ctx.cfg.weather.push_role)
    limit = ctx.cfg.weather.max_document_bytes
    if request.content_length and request.content_length > limit:
        weather.reject(f"push by {who.name}", "oversized", f"body of {request.content_length} bytes", "push")
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=request.content_length,
            text=json.dumps({"status": 413, "detail": f"document over {limit} bytes"}),
            content_type="application/json",
        )
    raw = await read_body(request, limit)
    try:
        outcome = await asyncio.to_thread(weather.ingest, raw, f"push by {who.name}", "push")
    except CapError as exc:
        if exc.code == "oversized" and len(raw) > limit:
            raise web.HTTPRequestEntityTooLarge(
                max_size=limit,
                actual_size=len(raw),
                text=json.dumps({"status": 413, "detail": exc.reason}),
                content_type="application/json",
            ) from None
        raise problem(400, f"{exc.code}: {exc.reason}") from None
    ctx.on_change()
    watch = await asyncio.to_thread(weather.watch)
    return web.json_response(
        {**outcome.as_dict(), "watch": watch["items"]}, status=201 if outcome.result != "duplicate" else 200
    )


async def list_warnings(request: web.Request) -> web.Response:
    weather = _weather(request)
    state = request.query.get("state")
    if state not in (None, "active", "replaced", "cancelled", "expired", "ignored"):
        raise problem(400, "state must be active, replaced, cancelled, expired or ignored")
    limit = int_param(request, "limit", 100, 1, 1000)
    return web.json_response(await asyncio.to_thread(weather.warnings, state, limit))


async def get_watch(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_weather(request).watch))


def _openapi() -> dict:
    text = resources.files("hazardwatch.central.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


async def openapi_yaml(request: web.Request) -> web.Response:
    text = resources.files("hazardwatch.central.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/yaml")


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(_openapi())


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        await ctx.run(lambda tx: tx.execute("SELECT 1"))
        db_ok = True
    except Exception:
        db_ok = False
    status = 200 if db_ok else 503
    return web.json_response(
        {
            "status": "ok" if db_ok else "degraded",
            "database": db_ok,
            "mqtt": ctx.mqtt_state(),
            "instance_id": ctx.cfg.instance_id,
        },
        status=status,
    )


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    counts = await ctx.run(lambda tx: tx.execute("SELECT state, COUNT(*) FROM incidents GROUP BY state"))
    for state in ("open", "acknowledged", "resolved", "false_alarm"):
        ctx.metrics.incidents.labels(state).set(dict(counts).get(state, 0))
    body = b"".join(generate_latest(r) for r in [ctx.metrics.registry, *ctx.extra_registries])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/healthz", healthz),
    ("GET", "/metrics", metrics),
    ("GET", "/api/v1/openapi.yaml", openapi_yaml),
    ("GET", "/api/v1/openapi.json", openapi_json),
    ("POST", "/api/v1/login", login),
    ("GET", "/api/v1/me", whoami),
    ("GET", "/api/v1/incidents", list_incidents),
    ("GET", "/api/v1/incidents/{incident_id}", get_incident),
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge", action_handler("acknowledge")),
    ("POST", "/api/v1/incidents/{incident_id}/resolve", action_handler("resolve")),
    ("POST", "/api/v1/incidents/{incident_id}/false-alarm", action_handler("false_alarm")),
    ("POST", "/api/v1/incidents/{incident_id}/reopen", action_handler("reopen")),
    ("GET", "/api/v1/silences", list_silences),
    ("POST", "/api/v1/silences", create_silence),
    ("DELETE", "/api/v1/silences/{silence_id}", expire_silence),
    ("GET", "/api/v1/cameras", list_cameras),
    ("GET", "/api/v1/edges", list_edges),
    ("GET", "/api/v1/deliveries", list_deliveries),
    ("POST", "/api/v1/deliveries/{delivery_id}/retry", retry_delivery),
    ("GET", "/api/v1/evidence/{evidence_id}.jpg", evidence),
    ("GET", "/api/v1/events", events),
    ("POST", "/api/v1/warnings", push_warning),
    ("GET", "/api/v1/warnings", list_warnings),
    ("GET", "/api/v1/watch", get_watch),
]


from hazardwatch.central.api import response, retraining  # noqa: E402 - their handlers use the helpers above

ROUTES += retraining.ROUTES
ROUTES += response.ROUTES


def make_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[auth_middleware], client_max_size=MAX_BODY)
    app[CTX] = ctx
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    dashboard.add_routes(app, ctx.cfg.dashboard)  # the page; public like every path outside /api/
    return app
