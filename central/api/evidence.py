"""Evidence and labels: alert snapshots (capability URLs receivers fetch), resumable evidence-file
uploads from edges, operators' labels and the labelling queue (docs/retraining.md)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import (
    Route,
    body_model,
    float_param,
    ident,
    incident_id,
    int_param,
    principal,
    problem,
    read_body,
    require,
)
from hazardwatch.central.api.media import ranged
from hazardwatch.central.services import evidence_files, labels, views

MAX_CHUNK = 16 << 20
NOSNIFF = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}


async def snapshot(request: web.Request) -> web.Response:
    """Evidence is reachable by its unguessable id (a capability URL receivers can fetch)."""
    eid = request.match_info["evidence_id"]
    if len(eid) > 64:
        raise problem(404, "no such evidence")
    found = await context(request).run(views.snapshot, eid)
    if found is None:
        raise problem(404, "no such evidence")
    return web.Response(body=found[1], content_type=found[0], headers=NOSNIFF)


def _may_upload(request: web.Request, edge_id: str) -> None:
    who = principal(request)
    if who.role == "edge" and who.name != edge_id:
        raise problem(403, f"token {who.name} may only upload evidence of edge {who.name}")
    if who.role not in ("edge", "admin"):
        raise problem(403, "edge or admin role required")


async def evidence_head(request: web.Request) -> web.Response:
    ctx = context(request)
    edge_id, eid = ident(request, "edge_id"), ident(request, "evidence_id")
    _may_upload(request, edge_id)
    found = await ctx.run(evidence_files.offset, edge_id, eid)
    if found is None:
        return web.Response(status=404, headers={"Upload-Offset": "0"})
    received, complete = found
    return web.Response(status=200, headers={"Upload-Offset": str(received), "Upload-Complete": str(complete).lower()})


async def evidence_put(request: web.Request) -> web.Response:
    ctx = context(request)
    edge_id, eid = ident(request, "edge_id"), ident(request, "evidence_id")
    _may_upload(request, edge_id)
    rng = evidence_files.parse_range(request.headers.get("Content-Range"))
    meta = evidence_files.Meta.parse(request.headers.get("X-Evidence-Meta", ""))
    if rng[1] - rng[0] > MAX_CHUNK:
        raise problem(413, f"chunks are at most {MAX_CHUNK} bytes")
    body = await read_body(request, MAX_CHUNK)
    if len(body) > MAX_CHUNK:
        raise problem(413, f"chunks are at most {MAX_CHUNK} bytes")
    result = await ctx.run(evidence_files.put_chunk, edge_id, eid, rng, body, meta, time.time())
    return web.json_response(result)


async def evidence_file(request: web.Request) -> web.Response:
    ctx = context(request)
    found = await ctx.run(evidence_files.content, ident(request, "edge_id"), ident(request, "evidence_id"))
    if found is None:
        raise problem(404, "no such evidence file")
    return ranged(request, found[1], found[0], NOSNIFF)  # edge-supplied bytes; ranges let a player seek


async def incident_labels(request: web.Request) -> web.Response:
    iid = incident_id(request)

    def load(tx: Any) -> dict:
        return {"labels": labels.for_incident(tx, iid), "evidence_files": evidence_files.for_incident(tx, iid)}

    return web.json_response(await context(request).run(load))


async def add_label(request: web.Request) -> web.Response:
    ctx = context(request)
    who = require(request, "operator")
    iid = incident_id(request)
    body = await body_model(request, labels.LabelBody)
    label = await ctx.run(labels.add, iid, body, who.name, time.time())
    ctx.on_change()
    return web.json_response(label, status=201)


async def add_file_label(request: web.Request) -> web.Response:
    """A label on an evidence file with no incident (a quiet frame)."""
    ctx = context(request)
    who = require(request, "operator")
    body = await body_model(request, labels.LabelBody)
    if body.evidence is None:
        raise problem(400, "evidence: name the evidence file")
    label = await ctx.run(labels.add, None, body, who.name, time.time())
    return web.json_response(label, status=201)


async def list_labels(request: web.Request) -> web.Response:
    since = float_param(request, "since")
    limit = int_param(request, "limit", 500, 1, 10_000)
    return web.json_response({"items": await context(request).run(labels.listing, since, limit)})


async def labelling_queue(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 50, 1, 500)
    return web.json_response({"items": await context(request).run(labels.propose, limit, None)})


ROUTES: list[Route] = [
    ("GET", "/api/v1/evidence/{evidence_id}.jpg", snapshot),
    ("HEAD", "/api/v1/edges/{edge_id}/evidence/{evidence_id}", evidence_head),
    ("PUT", "/api/v1/edges/{edge_id}/evidence/{evidence_id}", evidence_put),
    ("GET", "/api/v1/evidence-files/{edge_id}/{evidence_id}", evidence_file),
    ("GET", "/api/v1/incidents/{incident_id}/labels", incident_labels),
    ("POST", "/api/v1/incidents/{incident_id}/labels", add_label),
    ("POST", "/api/v1/labels", add_file_label),
    ("GET", "/api/v1/labels", list_labels),
    ("GET", "/api/v1/labelling/queue", labelling_queue),
]
