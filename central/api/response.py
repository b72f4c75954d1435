"""REST handlers of the incident response (issue 16): false-alarm suppressions and procedure steps.
`app.py` appends `ROUTES`; rules are in docs/central.md."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from hazardwatch.central.services import incidents, suppressions


def _api() -> Any:
    """The helpers of app.py, imported late: app.py imports this module at its end."""
    from hazardwatch.central.api import app

    return app


async def list_suppressions(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    include = request.query.get("include_ended") == "true"
    inc = request.query.get("incident_id")
    if inc is not None and not inc.isdigit():
        raise api.problem(400, "incident_id: must be a positive integer")
    items = await ctx.run(suppressions.listing, time.time(), include, int(inc) if inc else None)
    return web.json_response({"items": items, "settings": ctx.cfg.false_alarm.model_dump()})


async def lift_suppression(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    who = api.require(request, "operator")
    raw = request.match_info["suppression_id"]
    if not raw.isdigit():
        raise api.problem(400, "suppression_id: must be a positive integer")
    sid = int(raw)

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


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/suppressions", list_suppressions),
    ("DELETE", "/api/v1/suppressions/{suppression_id}", lift_suppression),
]
