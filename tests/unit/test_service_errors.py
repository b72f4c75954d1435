"""Services raise one family of errors with no HTTP status; the API maps each kind in one place."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hazardwatch.central.api.middleware import service_errors
from hazardwatch.central.services.errors import Conflict, Damaged, Invalid, NotFound, ServiceError, TooLarge
from hazardwatch.central.warnings.cap_model import CapError

pytestmark = pytest.mark.quick
ROOT = Path(__file__).resolve().parents[2]


async def _answer(exc: Exception) -> tuple[int, dict]:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[service_errors])
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/")
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFound("incident 9 does not exist"), 404),
        (Conflict("cannot acknowledge an incident that is resolved"), 409),
        (Invalid("say which hazard"), 400),
        (TooLarge("file over 10 bytes"), 413),
        (Damaged("sha256 does not match"), 422),
        (CapError("malformed", "not XML"), 400),
    ],
)
def test_each_kind_becomes_its_problem_response(exc: ServiceError, status: int) -> None:
    got, body = asyncio.run(_answer(exc))
    assert (got, body) == (status, {"status": status, "detail": str(exc)})


def test_a_rejected_cap_document_says_its_code_and_reason() -> None:
    exc = CapError("forbidden", "DTDs are refused")
    assert isinstance(exc, Invalid) and str(exc) == "forbidden: DTDs are refused"
    assert (exc.code, exc.reason) == ("forbidden", "DTDs are refused")


def test_no_service_exception_carries_an_http_status() -> None:
    """Read from the source: no class under services/ or warnings/ keeps a `status` of its own."""
    found = []
    for path in sorted([*(ROOT / "central/services").glob("*.py"), *(ROOT / "central/warnings").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                attrs = {
                    t.attr
                    for n in ast.walk(node)
                    if isinstance(n, ast.Assign)
                    for t in n.targets
                    if isinstance(t, ast.Attribute)
                }
                if "status" in attrs:
                    found.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert found == []
