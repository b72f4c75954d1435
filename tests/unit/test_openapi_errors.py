"""The OpenAPI document names the errors every operation can answer (issue 17, point 6).

schemathesis finds an undocumented status on a running central (tests/integration/test_hostile_api.py);
this says which line is missing, in milliseconds, when someone adds an operation."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

pytestmark = pytest.mark.quick

SPEC = yaml.safe_load(resources.files("hazardwatch.central.api").joinpath("openapi.yaml").read_text(encoding="utf-8"))
OPERATIONS = [
    (method.upper(), path, op)
    for path, ops in SPEC["paths"].items()
    for method, op in ops.items()
    if method in ("get", "post", "put", "delete", "head", "patch")
]


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_operation_documents_its_errors(method, path, op):
    codes = set(op["responses"])
    if op.get("security") != []:  # behind the token check: a missing or wrong token, and guessing too fast
        assert {"401", "429"} <= codes, f"{method} {path}: add 401 and 429"
    content = (op.get("requestBody") or {}).get("content", {})
    if "application/json" in content:  # a body of another type, or one that does not parse
        assert {"400", "415"} <= codes, f"{method} {path}: add 400 and 415"
    if any(p.get("in") == "query" for p in op.get("parameters", []) if "in" in p):
        assert "400" in codes, f"{method} {path}: a checked query parameter can answer 400"
    if "{" in path:
        assert "404" in codes, f"{method} {path}: an unknown id answers 404"


def test_offsets_are_capped_as_the_code_caps_them():
    for path in ("/api/v1/incidents", "/api/v1/deliveries"):
        (offset,) = [p for p in SPEC["paths"][path]["get"]["parameters"] if p["name"] == "offset"]
        assert offset["schema"]["maximum"] == 10_000_000, path
