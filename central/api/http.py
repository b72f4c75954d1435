"""HTTP helpers every handler uses: problem responses (RFC 7807-style `{status, detail}`), the
authenticated principal, request bodies read whole and validated, and query and path parameters
that refuse bad input with a 400 (or 404 for an id no row can have)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hazardwatch.central.api.auth import Principal

MAX_BODY = 64 * 1024
MAX_ROW_ID = 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT: no row has a larger id
PRINCIPAL = "principal"
IDENT = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]
Body = TypeVar("Body", bound=BaseModel)

_STATUS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
}


def problem(status: int, detail: str) -> web.HTTPException:
    if status == 413:
        return too_large(detail, MAX_BODY)
    return _STATUS[status](text=json.dumps({"status": status, "detail": detail}), content_type="application/json")


def too_large(detail: str, limit: int, actual: int = 0) -> web.HTTPException:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=actual,
        text=json.dumps({"status": 413, "detail": detail}),
        content_type="application/json",
    )


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require(request: web.Request, role: str) -> Principal:
    who = principal(request)
    if not who.can(role):
        raise problem(403, f"{who.role} may not do this; {role} role required")
    return who


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or its first `limit + 1` bytes when it is longer (the caller refuses those).

    `StreamReader.read(n)` returns what has arrived so far, not n bytes: a large body read once
    is cut short and then fails to parse, so read until the end or past the limit.
    """
    body = bytearray()
    while len(body) <= limit and (part := await request.content.read(limit + 1 - len(body))):
        body += part
    return bytes(body)


async def body_model(request: web.Request, model: type[Body]) -> Body:
    if request.content_length and request.content_length > MAX_BODY:
        raise problem(413, f"body over {MAX_BODY} bytes")
    raw = await read_body(request, MAX_BODY)
    if len(raw) > MAX_BODY:
        raise problem(413, f"body over {MAX_BODY} bytes")
    if raw and request.content_type != "application/json":  # no body at all means {} (every field optional)
        raise problem(415, f"Content-Type: application/json required, not {request.content_type}")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise problem(400, f"{where}: {err['msg']}") from None


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise problem(400, f"query parameter {name} must be an integer") from None
    if not lo <= value <= hi:
        raise problem(400, f"query parameter {name} must be between {lo} and {hi}")
    return value


def float_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise problem(400, f"query parameter {name} must be a number") from None
    if not math.isfinite(value):
        raise problem(400, f"query parameter {name} must be a finite number")
    return value


def bool_param(request: web.Request, name: str) -> bool:
    """`true` or `false` (absent: false); anything else is a 400, not a silent false."""
    raw = request.query.get(name)
    if raw not in (None, "true", "false"):
        raise problem(400, f"query parameter {name} must be true or false")
    return raw == "true"


def choice_param(request: web.Request, name: str, choices: tuple[str, ...], refusal: str = "") -> str | None:
    """One of `choices` or None; anything else is a 400 (`refusal`, or a sentence naming the choices)."""
    raw = request.query.get(name)
    if raw is not None and raw not in choices:
        raise problem(400, refusal or f"query parameter {name} must be one of {', '.join(choices)}")
    return raw


def path_id(request: web.Request, name: str) -> int:
    """A numeric id from the path. Anything no row can have answers 404: the SQLite driver raises
    OverflowError (a 500) on integers past 64 bits, where PostgreSQL simply finds nothing."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_ROW_ID):
        raise problem(404, f"no such {name.removesuffix('_id')}")
    return int(raw)


def incident_id(request: web.Request) -> int:
    return path_id(request, "incident_id")


def ident(request: web.Request, name: str) -> str:
    """A name from the path (edge, evidence, model, version): 404 for anything no row can have."""
    value = request.match_info[name]
    if not IDENT.match(value):
        raise problem(404, f"no such {name.replace('_', ' ')}")
    return value
