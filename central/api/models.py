"""The model registry and rollouts: admins register ONNX models and roll them out (canary first);
edges download manifests and files (docs/retraining.md)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field

from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import Route, body_model, ident, path_id, problem, read_body, require
from hazardwatch.central.services import comparisons, registry

MAX_UPLOAD = registry.MAX_MODEL_BYTES + (1 << 20)
PARTS = ("manifest", "file", "note", "comparison")
MAX_COMPARISON = 4 << 20


class RolloutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)
    edges: list[str] = Field(min_length=1, max_length=10_000)
    canary: str | None = Field(default=None, max_length=64, description="Default: the first edge")


async def _parts(request: web.Request) -> dict[str, bytes]:
    """The multipart body's parts, each read whole, refusing unknown parts and bodies over MAX_UPLOAD."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise problem(400, "send multipart/form-data with parts manifest and file") from None
    parts: dict[str, bytes] = {}
    total = 0
    try:
        while (part := await reader.next()) is not None:
            name = getattr(part, "name", None)
            if name not in PARTS:
                raise problem(400, f"unexpected part {name!r}")
            data = bytearray()
            while chunk := await part.read_chunk(1 << 20):  # type: ignore[union-attr]
                total += len(chunk)
                if total > MAX_UPLOAD:
                    raise problem(413, f"body over {MAX_UPLOAD} bytes")
                data += chunk
            parts[name] = bytes(data)
    except (HttpProcessingError, ValueError) as exc:  # a malformed multipart body is the client's error: 400
        raise problem(400, f"malformed multipart body ({type(exc).__name__})") from None
    return parts


async def register_model(request: web.Request) -> web.Response:
    """multipart/form-data: `manifest` (JSON), `file` (the ONNX bytes), optional `note` and `comparison`
    (`models compare --json` of this candidate beside the running model)."""
    ctx = context(request)
    who = require(request, "admin")
    if request.content_length and request.content_length > MAX_UPLOAD:
        raise problem(413, f"body over {MAX_UPLOAD} bytes")
    parts = await _parts(request)
    if "manifest" not in parts or "file" not in parts:
        raise problem(400, "parts manifest and file are required")
    note = parts.get("note", b"").decode(errors="replace")[:2000]
    now = time.time()
    if "comparison" in parts:
        comparisons.parse(parts["comparison"])  # a 400 before anything is stored

    def store(tx: Any) -> dict:
        model = registry.register(tx, parts["manifest"], parts["file"], who.name, note, now)
        if "comparison" in parts:
            model["comparison"] = comparisons.attach(
                tx, model["name"], model["version"], parts["comparison"], who.name, now
            )
        return model

    return web.json_response(await ctx.run(store), status=201)


async def put_comparison(request: web.Request) -> web.Response:
    """The candidate's `models compare --json` object; a later upload (a grown labelled set) replaces it."""
    ctx = context(request)
    who = require(request, "admin")
    raw = await read_body(request, MAX_COMPARISON)
    if len(raw) > MAX_COMPARISON:
        raise problem(413, f"comparison over {MAX_COMPARISON} bytes")
    name, version = ident(request, "name"), ident(request, "version")
    view = await ctx.run(comparisons.attach, name, version, raw, who.name, time.time())
    return web.json_response(view)


async def list_models(request: web.Request) -> web.Response:
    hazard = request.query.get("hazard")

    def load(tx: Any) -> dict:
        return {"items": registry.list_versions(tx, hazard), "edges": registry.edge_models(tx)}

    return web.json_response(await context(request).run(load))


async def _version(request: web.Request) -> dict:
    found = await context(request).run(registry.get_version, ident(request, "name"), ident(request, "version"))
    if found is None:
        raise problem(404, "no such model version")
    return found


async def get_model(request: web.Request) -> web.Response:
    return web.json_response(await _version(request))


async def model_manifest(request: web.Request) -> web.Response:
    return web.json_response((await _version(request))["manifest"])


async def model_download(request: web.Request) -> web.Response:
    found = await context(request).run(registry.model_file, ident(request, "name"), ident(request, "version"))
    if found is None:
        raise problem(404, "no such model version")
    name, data = found
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"},
    )


async def create_rollout(request: web.Request) -> web.Response:
    ctx = context(request)
    who = require(request, "admin")
    body = await body_model(request, RolloutBody)
    view = await ctx.run(
        registry.create_rollout, body.model, body.version, body.edges, body.canary, who.name, time.time()
    )
    ctx.on_change()
    return web.json_response(view, status=201)


async def list_rollouts(request: web.Request) -> web.Response:
    return web.json_response({"items": await context(request).run(registry.list_rollouts, 50)})


async def get_rollout(request: web.Request) -> web.Response:
    rid = path_id(request, "rollout_id")
    view = await context(request).run(registry.get_rollout, rid)
    if view is None:
        raise problem(404, f"rollout {rid} does not exist")
    return web.json_response(view)


ROUTES: list[Route] = [
    ("POST", "/api/v1/models", register_model),
    ("GET", "/api/v1/models", list_models),
    ("GET", "/api/v1/models/{name}/{version}", get_model),
    ("GET", "/api/v1/models/{name}/{version}/manifest", model_manifest),
    ("GET", "/api/v1/models/{name}/{version}/file", model_download),
    ("PUT", "/api/v1/models/{name}/{version}/comparison", put_comparison),
    ("POST", "/api/v1/rollouts", create_rollout),
    ("GET", "/api/v1/rollouts", list_rollouts),
    ("GET", "/api/v1/rollouts/{rollout_id}", get_rollout),
]
