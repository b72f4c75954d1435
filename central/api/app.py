"""The REST API under /api/v1 (aiohttp), plus the dashboard page. Handlers parse and authorise;
services do the work. Roles are viewer < operator < admin; edge tokens only upload and download."""

from __future__ import annotations

from aiohttp import web

from hazardwatch.central.api import dashboard
from hazardwatch.central.api.context import CTX, ApiContext
from hazardwatch.central.api.http import MAX_BODY
from hazardwatch.central.api.middleware import auth_middleware, service_errors
from hazardwatch.central.api.routes import ROUTES


def make_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[service_errors, auth_middleware], client_max_size=MAX_BODY)
    app[CTX] = ctx
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    dashboard.add_routes(app, ctx.cfg.map)  # the page; public like every path outside /api/
    return app
