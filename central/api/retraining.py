"""REST handlers of the retraining loop: evidence upload, labels, the labelling queue, the model
registry and rollouts (docs/retraining.md). `app.py` appends `ROUTES`.

Edge tokens (role `edge`, named after the edge id) may only upload their own evidence and download
models; `EDGE_PATHS` is what the auth middleware lets them reach.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field

from hazardwatch.central.services import evidence_files, labels, registry

EDGE_PATHS = (
    re.compile(r"^/api/v1/edges/[^/]+/evidence/[^/]+$"),
    re.compile(r"^/api/v1/models/[^/]+/[^/]+/(manifest|file)$"),
)
MAX_CHUNK = 16 << 20
MAX_UPLOAD = registry.MAX_MODEL_BYTES + (1 << 20)
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def edge_may(path: str) -> bool:
    return any(p.match(path) for p in EDGE_PATHS)


def _api() -> Any:
    """The helpers of app.py, imported late: app.py imports this module at its end."""
    from hazardwatch.central.api import app

    return app


def _ident(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise _api().problem(404, f"no such {name.replace('_', ' ')}")
    return value


# -- evidence upload (edge) -----------------------------------------------------------------------------
def _may_upload(request: web.Request, edge_id: str) -> None:
    who = _api().principal(request)
    if who.role == "edge" and who.name != edge_id:
        raise _api().problem(403, f"token {who.name} may only upload evidence of edge {who.name}")
    if who.role not in ("edge", "admin"):
        raise _api().problem(403, "edge or admin role required")


async def evidence_head(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    edge_id, ident = _ident(request, "edge_id"), _ident(request, "evidence_id")
    _may_upload(request, edge_id)
    found = await ctx.run(evidence_files.offset, edge_id, ident)
    if found is None:
        return web.Response(status=404, headers={"Upload-Offset": "0"})
    received, complete = found
    return web.Response(status=200, headers={"Upload-Offset": str(received), "Upload-Complete": str(complete).lower()})


async def evidence_put(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    problem = _api().problem
    edge_id, ident = _ident(request, "edge_id"), _ident(request, "evidence_id")
    _may_upload(request, edge_id)
    try:
        rng = evidence_files.parse_range(request.headers.get("Content-Range"))
        meta = evidence_files.Meta.parse(request.headers.get("X-Evidence-Meta", ""))
    except evidence_files.UploadError as exc:
        raise problem(exc.status if exc.status in (400, 413) else 400, str(exc)) from None
    if rng[1] - rng[0] > MAX_CHUNK:
        raise problem(413, f"chunks are at most {MAX_CHUNK} bytes")
    body = await _api().read_body(request, MAX_CHUNK)
    if len(body) > MAX_CHUNK:
        raise problem(413, f"chunks are at most {MAX_CHUNK} bytes")
    try:
        result = await ctx.run(evidence_files.put_chunk, edge_id, ident, rng, body, meta, time.time())
    except evidence_files.UploadError as exc:
        status = exc.status
        return web.json_response({"status": status, "detail": str(exc)}, status=status)
    return web.json_response(result)


async def evidence_file(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    found = await ctx.run(evidence_files.content, _ident(request, "edge_id"), _ident(request, "evidence_id"))
    if found is None:
        raise _api().problem(404, "no such evidence file")
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}  # edge-supplied bytes
    return web.Response(body=found[1], content_type=found[0], headers=headers)


# -- labels ---------------------------------------------------------------------------------------------
async def incident_labels(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    iid = _api().incident_id(request)

    def load(tx: Any) -> dict:
        return {"labels": labels.for_incident(tx, iid), "evidence_files": evidence_files.for_incident(tx, iid)}

    return web.json_response(await ctx.run(load))


async def add_label(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    who = api.require(request, "operator")
    iid = api.incident_id(request)
    body: labels.LabelBody = await api.body_model(request, labels.LabelBody)
    try:
        label = await ctx.run(labels.add, iid, body, who.name, time.time())
    except labels.LabelError as exc:
        raise api.problem(exc.status, str(exc)) from None
    ctx.on_change()
    return web.json_response(label, status=201)


async def add_file_label(request: web.Request) -> web.Response:
    """A label on an evidence file with no incident (a quiet frame)."""
    api = _api()
    ctx = request.app[api.CTX]
    who = api.require(request, "operator")
    body: labels.LabelBody = await api.body_model(request, labels.LabelBody)
    if body.evidence is None:
        raise api.problem(400, "evidence: name the evidence file")
    try:
        label = await ctx.run(labels.add, None, body, who.name, time.time())
    except labels.LabelError as exc:
        raise api.problem(exc.status, str(exc)) from None
    return web.json_response(label, status=201)


async def list_labels(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    since = api.float_param(request, "since")
    limit = api.int_param(request, "limit", 500, 1, 10_000)
    return web.json_response({"items": await ctx.run(labels.listing, since, limit)})


async def labelling_queue(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    limit = api.int_param(request, "limit", 50, 1, 500)
    return web.json_response({"items": await ctx.run(labels.propose, limit, None)})


# -- registry -------------------------------------------------------------------------------------------
async def register_model(request: web.Request) -> web.Response:
    """multipart/form-data: `manifest` (JSON), `file` (the ONNX bytes), optional `note`."""
    api = _api()
    ctx = request.app[api.CTX]
    who = api.require(request, "admin")
    if request.content_length and request.content_length > MAX_UPLOAD:
        raise api.problem(413, f"body over {MAX_UPLOAD} bytes")
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise api.problem(400, "send multipart/form-data with parts manifest and file") from None
    parts: dict[str, bytes] = {}
    total = 0
    try:
        while (part := await reader.next()) is not None:
            name = getattr(part, "name", None)
            if name not in ("manifest", "file", "note"):
                raise api.problem(400, f"unexpected part {name!r}")
            data = bytearray()
            while chunk := await part.read_chunk(1 << 20):  # type: ignore[union-attr]
                total += len(chunk)
                if total > MAX_UPLOAD:
                    raise api.problem(413, f"body over {MAX_UPLOAD} bytes")
                data += chunk
            parts[name] = bytes(data)
    except (HttpProcessingError, ValueError) as exc:  # a malformed multipart body is the client's error: 400
        raise api.problem(400, f"malformed multipart body ({type(exc).__name__})") from None
    if "manifest" not in parts or "file" not in parts:
        raise api.problem(400, "parts manifest and file are required")
    note = parts.get("note", b"").decode(errors="replace")[:2000]
    try:
        model = await ctx.run(registry.register, parts["manifest"], parts["file"], who.name, note, time.time())
    except registry.RegistryError as exc:
        raise api.problem(exc.status, str(exc)) from None
    return web.json_response(model, status=201)


async def list_models(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    hazard = request.query.get("hazard")

    def load(tx: Any) -> dict:
        return {"items": registry.list_versions(tx, hazard), "edges": registry.edge_models(tx)}

    return web.json_response(await ctx.run(load))


async def get_model(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    found = await ctx.run(registry.get_version, _ident(request, "name"), _ident(request, "version"))
    if found is None:
        raise _api().problem(404, "no such model version")
    return web.json_response(found)


async def model_manifest(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    found = await ctx.run(registry.get_version, _ident(request, "name"), _ident(request, "version"))
    if found is None:
        raise _api().problem(404, "no such model version")
    return web.json_response(found["manifest"])


async def model_download(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    found = await ctx.run(registry.model_file, _ident(request, "name"), _ident(request, "version"))
    if found is None:
        raise _api().problem(404, "no such model version")
    name, data = found
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"},
    )


class RolloutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)
    edges: list[str] = Field(min_length=1, max_length=10_000)
    canary: str | None = Field(default=None, max_length=64, description="Default: the first edge")


async def create_rollout(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    who = api.require(request, "admin")
    body: RolloutBody = await api.body_model(request, RolloutBody)
    try:
        view = await ctx.run(
            registry.create_rollout, body.model, body.version, body.edges, body.canary, who.name, time.time()
        )
    except registry.RegistryError as exc:
        raise api.problem(exc.status, str(exc)) from None
    ctx.on_change()
    return web.json_response(view, status=201)


async def list_rollouts(request: web.Request) -> web.Response:
    ctx = request.app[_api().CTX]
    return web.json_response({"items": await ctx.run(registry.list_rollouts, 50)})


async def get_rollout(request: web.Request) -> web.Response:
    api = _api()
    ctx = request.app[api.CTX]
    rid = api.path_id(request, "rollout_id")
    view = await ctx.run(registry.get_rollout, rid)
    if view is None:
        raise api.problem(404, f"rollout {rid} does not exist")
    return web.json_response(view)


ROUTES: list[tuple[str, str, Any]] = [
    ("HEAD", "/api/v1/edges/{edge_id}/evidence/{evidence_id}", evidence_head),
    ("PUT", "/api/v1/edges/{edge_id}/evidence/{evidence_id}", evidence_put),
    ("GET", "/api/v1/evidence-files/{edge_id}/{evidence_id}", evidence_file),
    ("GET", "/api/v1/incidents/{incident_id}/labels", incident_labels),
    ("POST", "/api/v1/incidents/{incident_id}/labels", add_label),
    ("POST", "/api/v1/labels", add_file_label),
    ("GET", "/api/v1/labels", list_labels),
    ("GET", "/api/v1/labelling/queue", labelling_queue),
    ("POST", "/api/v1/models", register_model),
    ("GET", "/api/v1/models", list_models),
    ("GET", "/api/v1/models/{name}/{version}", get_model),
    ("GET", "/api/v1/models/{name}/{version}/manifest", model_manifest),
    ("GET", "/api/v1/models/{name}/{version}/file", model_download),
    ("POST", "/api/v1/rollouts", create_rollout),
    ("GET", "/api/v1/rollouts", list_rollouts),
    ("GET", "/api/v1/rollouts/{rollout_id}", get_rollout),
]
