"""REST handlers of the incident response (issue 16): false-alarm suppressions and procedure steps.
`app.py` appends `ROUTES`; rules are in docs/central.md."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hazardwatch.central.services import incidents, procedures, suppressions, views


def _api() -> Any:
    """The helpers of app.py, imported late: app.py imports this module at its end."""
    from hazardwatch.central.api import app

    return app


async def list_suppressions(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    include = api.bool_param(request, "include_ended")
    inc = api.int_param(request, "incident_id", 0, 0, api.MAX_ROW_ID) if "incident_id" in request.query else None
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
    api = _api()
    ctx = request.app[api.CTX]
    who = api.require(request, "operator")
    sid = api.path_id(request, "suppression_id")  # past 64 bits: 404, never the driver's OverflowError

    def lift(tx: Any) -> int | None:
        now = time.time()
        row = tx.one("SELECT incident_id FROM suppressions WHERE id = ?", (sid,))
        if row is None or not suppressions.end(tx, sid, who.name, "lifted by an operator", now):
            return None
        incidents.add_event(tx, row[0], now, "suppression_lifted", who.name, {"suppression_id": sid})
        return int(row[0])

    if await ctx.run(lift) is None:
        raise api.problem(404, f"suppression {sid} does not exist or is no longer active")
    ctx.on_change()
    return web.json_response({"id": sid, "active": False})


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    procedure_id: str = Field(min_length=1, max_length=64)
    index: int = Field(ge=0, le=100)
    done: bool = True
    note: str = Field(default="", max_length=2000)


async def tick_step(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    who = api.require(request, "operator")
    iid = api.incident_id(request)
    body: StepBody = await api.body_model(request, StepBody)
    try:
        await ctx.run(procedures.tick, iid, body.procedure_id, body.index, body.done, who.name, body.note, time.time())
    except incidents.ActionError as exc:
        raise api.problem(exc.status, str(exc)) from None
    ctx.on_change()
    view = await ctx.run(views.incident_view, iid, ctx.base_url, ctx.cfg.site)
    return web.json_response(view)


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/incidents/{incident_id}/steps", tick_step),
    ("GET", "/api/v1/suppressions", list_suppressions),
    ("DELETE", "/api/v1/suppressions/{suppression_id}", lift_suppression),
]
