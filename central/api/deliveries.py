"""Notification deliveries: the queue's recent rows and counts, and an admin's retry of a dead letter."""

from __future__ import annotations

from aiohttp import web

from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import Route, choice_param, int_param, path_id, problem, require
from hazardwatch.central.services import deliveries

STATES = ("pending", "delivered", "dead")


async def list_deliveries(request: web.Request) -> web.Response:
    ctx = context(request)
    state = choice_param(request, "state", STATES, "state must be pending, delivered or dead")
    limit = int_param(request, "limit", 100, 1, 1000)
    offset = int_param(request, "offset", 0, 0, 10_000_000)
    return web.json_response(await ctx.run(deliveries.listing, state, limit, offset))


async def retry_delivery(request: web.Request) -> web.Response:
    ctx = context(request)
    require(request, "admin")
    did = path_id(request, "delivery_id")
    if not await ctx.run(deliveries.retry, did):
        raise problem(404, f"delivery {did} is not a dead letter")
    ctx.on_change()
    return web.json_response({"id": did, "state": "pending"})


ROUTES: list[Route] = [
    ("GET", "/api/v1/deliveries", list_deliveries),
    ("POST", "/api/v1/deliveries/{delivery_id}/retry", retry_delivery),
]
