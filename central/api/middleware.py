"""What runs around every handler: service errors become problem responses (the one place that maps
them to HTTP statuses), and authentication guards every /api/ path: a bearer token or the dashboard's
`hw_token` cookie (set by /api/v1/login). Failed guesses are rate-limited per client like failed logins.
Edge tokens (role `edge`, named after the edge id) reach only evidence upload and model download."""

from __future__ import annotations

import re

from aiohttp import web

from hazardwatch.central.api.auth import COOKIE
from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import PRINCIPAL, Handler, problem
from hazardwatch.central.services.errors import Conflict, Damaged, Invalid, NotFound, ServiceError, TooLarge

PUBLIC = ("/healthz", "/metrics", "/api/v1/login", "/api/v1/openapi.yaml", "/api/v1/openapi.json")
EDGE_PATHS = (
    re.compile(r"^/api/v1/edges/[^/]+/evidence/[^/]+$"),
    re.compile(r"^/api/v1/models/[^/]+/[^/]+/(manifest|file)$"),
)

# Most specific first: TooLarge and Damaged are kinds of Invalid.
STATUS: tuple[tuple[type[ServiceError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (Damaged, 422),
    (Invalid, 400),
)


def status_of(exc: ServiceError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 400)


@web.middleware
async def service_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as exc:
        raise problem(status_of(exc), str(exc)) from None


def edge_may(path: str) -> bool:
    return any(p.match(path) for p in EDGE_PATHS)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path in PUBLIC or path.startswith("/api/v1/evidence/") or not path.startswith("/api/"):
        return await handler(request)
    ctx = context(request)
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
    if who.role == "edge" and not edge_may(path):
        raise problem(403, "an edge token may only upload evidence and download models")
    request[PRINCIPAL] = who
    return await handler(request)
