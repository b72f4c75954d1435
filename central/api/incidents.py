"""Incidents: list, view, the operator's state actions and procedure steps.

A false alarm also teaches each camera behind the incident its normal (`services/teach.py`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hazardwatch.central.api.context import ApiContext, context
from hazardwatch.central.api.http import (
    Handler,
    Route,
    body_model,
    choice_param,
    float_param,
    incident_id,
    int_param,
    problem,
    require,
)
from hazardwatch.central.services import incidents, places, procedures, teach, views


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)
    suppress_s: float | None = Field(
        default=None, ge=0, description="false-alarm only: how long to keep this camera and region quiet"
    )


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    procedure_id: str = Field(min_length=1, max_length=64)
    index: int = Field(ge=0, le=100)
    done: bool = True
    note: str = Field(default="", max_length=2000)


async def list_incidents(request: web.Request) -> web.Response:
    ctx = context(request)
    f = views.IncidentFilter(
        state=choice_param(request, "state", ("open", "acknowledged", "resolved", "false_alarm")),
        hazard=request.query.get("hazard"),
        camera=request.query.get("camera"),
        since=float_param(request, "since"),
        limit=int_param(request, "limit", 50, 1, 500),
        offset=int_param(request, "offset", 0, 0, 10_000_000),
    )
    def load(tx: Any) -> tuple[list[dict[str, Any]], int]:
        items, total = views.list_incidents(tx, f)
        places.annotate(tx, items, ctx.areas)
        return items, total

    items, total = await ctx.run(load)
    return web.json_response({"items": items, "total": total, "limit": f.limit, "offset": f.offset})


def _placed_view(tx: Any, ctx: ApiContext, iid: int, timeline: bool = False) -> dict[str, Any] | None:
    """The incident view with its place (named area, line-of-sight stretch), and its timeline if asked."""
    view = views.incident_view(tx, iid, ctx.base_url, ctx.cfg.site)
    if view is not None:
        if timeline:
            view["timeline"] = views.timeline(tx, iid)
        places.annotate(tx, [view], ctx.areas)
    return view


async def get_incident(request: web.Request) -> web.Response:
    ctx = context(request)
    iid = incident_id(request)

    view = await ctx.run(_placed_view, ctx, iid, True)
    if view is None:
        raise problem(404, f"incident {iid} does not exist")
    return web.json_response(view)


async def _teach_edges(ctx: ApiContext, iid: int, actor: str, note: str) -> None:
    for cmd in await ctx.run(teach.learn_normal_commands, iid, actor, note):
        sent = await asyncio.to_thread(ctx.publish_command, cmd.edge_id, cmd.payload)
        ctx.metrics.learn_normal.labels("sent" if sent else "not_sent").inc()


def action_handler(action: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        ctx = context(request)
        who = require(request, "operator")
        iid = incident_id(request)
        body = await body_model(request, NoteBody)
        if action == "false_alarm" and not body.note.strip():
            raise problem(400, "note: say why this is a false alarm (cloud, fog, dust, vehicle, lights...)")
        fa = ctx.cfg.false_alarm
        suppress_s = fa.suppress_s if body.suppress_s is None else body.suppress_s
        if action == "false_alarm" and suppress_s > fa.max_suppress_s:
            raise problem(400, f"suppress_s: at most {fa.max_suppress_s:.0f} s (false_alarm.max_suppress_s)")
        await ctx.run(
            incidents.act,
            iid,
            action,
            who.name,
            body.note,
            time.time(),
            suppress_s,
            tuple(ctx.cfg.response.confirm_close),
        )
        ctx.on_change()
        if action == "false_alarm":
            await _teach_edges(ctx, iid, who.name, body.note)
        return web.json_response(await ctx.run(_placed_view, ctx, iid))

    return handle


async def tick_step(request: web.Request) -> web.Response:
    ctx = context(request)
    who = require(request, "operator")
    iid = incident_id(request)
    body = await body_model(request, StepBody)
    await ctx.run(procedures.tick, iid, body.procedure_id, body.index, body.done, who.name, body.note, time.time())
    ctx.on_change()
    return web.json_response(await ctx.run(_placed_view, ctx, iid))


ROUTES: list[Route] = [
    ("GET", "/api/v1/incidents", list_incidents),
    ("GET", "/api/v1/incidents/{incident_id}", get_incident),
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge", action_handler("acknowledge")),
    ("POST", "/api/v1/incidents/{incident_id}/resolve", action_handler("resolve")),
    ("POST", "/api/v1/incidents/{incident_id}/false-alarm", action_handler("false_alarm")),
    ("POST", "/api/v1/incidents/{incident_id}/reopen", action_handler("reopen")),
    ("POST", "/api/v1/incidents/{incident_id}/steps", tick_step),
]
