"""Weather warnings: CAP documents pushed by the command platform, the warnings on record and the
watch they raise (`central/warnings`). Every path answers 404 while weather.enabled is off."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import Route, choice_param, int_param, problem, read_body, require, too_large
from hazardwatch.central.warnings.cap_model import CapError
from hazardwatch.central.warnings.service import WeatherService

STATES = ("active", "replaced", "cancelled", "expired", "ignored")


def _weather(request: web.Request) -> WeatherService:
    weather = context(request).weather
    if weather is None:
        raise problem(404, "weather warnings are not enabled (weather.enabled in the central config)")
    return weather


async def push_warning(request: web.Request) -> web.Response:
    """A CAP document pushed by the command platform; answers what it did (or why it was refused)."""
    ctx = context(request)
    weather = _weather(request)
    who = require(request, ctx.cfg.weather.push_role)
    limit = ctx.cfg.weather.max_document_bytes
    if request.content_length and request.content_length > limit:
        weather.reject(f"push by {who.name}", "oversized", f"body of {request.content_length} bytes", "push")
        raise too_large(f"document over {limit} bytes", limit, request.content_length)
    raw = await read_body(request, limit)
    try:
        outcome = await asyncio.to_thread(weather.ingest, raw, f"push by {who.name}", "push")
    except CapError as exc:
        if exc.code == "oversized" and len(raw) > limit:
            raise too_large(exc.reason, limit, len(raw)) from None
        raise  # a 400 saying "code: reason", like every service error
    ctx.on_change()
    watch = await asyncio.to_thread(weather.watch)
    return web.json_response(
        {**outcome.as_dict(), "watch": watch["items"]}, status=201 if outcome.result != "duplicate" else 200
    )


async def list_warnings(request: web.Request) -> web.Response:
    weather = _weather(request)
    state = choice_param(request, "state", STATES, "state must be active, replaced, cancelled, expired or ignored")
    limit = int_param(request, "limit", 100, 1, 1000)
    return web.json_response(await asyncio.to_thread(weather.warnings, state, limit))


async def get_watch(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_weather(request).watch))


ROUTES: list[Route] = [
    ("POST", "/api/v1/warnings", push_warning),
    ("GET", "/api/v1/warnings", list_warnings),
    ("GET", "/api/v1/watch", get_watch),
]
