"""Quiet rules: silences (operators mute notifications over a window; the incident is still recorded)
and the suppressions a false alarm leaves behind (listed, and lifted early)."""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import MAX_ROW_ID, Route, body_model, bool_param, int_param, path_id, problem, require
from hazardwatch.central.config import CircleArea
from hazardwatch.central.services import procedures, silences, suppressions
from hazardwatch.contract import Hazard


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edge_id: str | None = Field(default=None, max_length=64)
    camera_id: str | None = Field(default=None, max_length=64)
    hazard: Hazard | None = None
    area: CircleArea | None = None
    starts_at: float | None = None
    ends_at: float | None = None
    duration_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    comment: str = Field(min_length=1, max_length=1000)


async def list_silences(request: web.Request) -> web.Response:
    ctx = context(request)
    include = bool_param(request, "include_expired")
    items = await ctx.run(silences.listing, include, time.time())
    return web.json_response({"items": [s.as_dict() for s in items]})


async def create_silence(request: web.Request) -> web.Response:
    ctx = context(request)
    who = require(request, "operator")
    body = await body_model(request, SilenceBody)
    now = time.time()
    starts = body.starts_at or now
    ends = body.ends_at or (starts + body.duration_s if body.duration_s else None)
    if ends is None:
        raise problem(400, "give ends_at or duration_s")
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
    return web.json_response(s.as_dict(), status=201)


async def expire_silence(request: web.Request) -> web.Response:
    ctx = context(request)
    who = require(request, "operator")
    sid = path_id(request, "silence_id")
    if not await ctx.run(silences.expire, sid, who.name, time.time()):
        raise problem(404, f"silence {sid} does not exist or already expired")
    ctx.on_change()
    return web.json_response({"id": sid, "expired": True})


async def list_suppressions(request: web.Request) -> web.Response:
    ctx = context(request)
    include = bool_param(request, "include_ended")
    inc = int_param(request, "incident_id", 0, 0, MAX_ROW_ID) if "incident_id" in request.query else None
    items = await ctx.run(suppressions.listing, time.time(), include, inc)
    return web.json_response(
        {
            "items": items,
            "settings": ctx.cfg.false_alarm.model_dump(),
            "calibrated_models": sorted(ctx.cfg.confidence.calibration),
            "confirm_close": list(ctx.cfg.response.confirm_close),
        }
    )


async def lift_suppression(request: web.Request) -> web.Response:
    ctx = context(request)
    who = require(request, "operator")
    sid = path_id(request, "suppression_id")  # past 64 bits: 404, never the driver's OverflowError
    if not await ctx.run(procedures.lift_suppression, sid, who.name, time.time()):
        raise problem(404, f"suppression {sid} does not exist or is no longer active")
    ctx.on_change()
    return web.json_response({"id": sid, "active": False})


ROUTES: list[Route] = [
    ("GET", "/api/v1/silences", list_silences),
    ("POST", "/api/v1/silences", create_silence),
    ("DELETE", "/api/v1/silences/{silence_id}", expire_silence),
    ("GET", "/api/v1/suppressions", list_suppressions),
    ("DELETE", "/api/v1/suppressions/{suppression_id}", lift_suppression),
]
