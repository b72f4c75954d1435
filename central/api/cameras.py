"""Cameras (state, diagnoses, why blind) and edges (availability, last heartbeat)."""

from __future__ import annotations

from aiohttp import web

from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import Route
from hazardwatch.central.services import views


async def list_cameras(request: web.Request) -> web.Response:
    return web.json_response({"items": await context(request).run(views.cameras)})


async def list_edges(request: web.Request) -> web.Response:
    return web.json_response({"items": await context(request).run(views.edges)})


ROUTES: list[Route] = [
    ("GET", "/api/v1/cameras", list_cameras),
    ("GET", "/api/v1/edges", list_edges),
]
