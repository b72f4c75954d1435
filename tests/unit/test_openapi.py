"""The OpenAPI document and the routes the service registers stay in step."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from hazardwatch.central.api.routes import ROUTES

pytestmark = pytest.mark.quick


def test_every_api_route_is_documented_and_every_documented_path_exists():
    doc = yaml.safe_load(resources.files("hazardwatch.central.api").joinpath("openapi.yaml").read_text())
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    routed = {(m, p) for m, p, _ in ROUTES if p.startswith("/api/") or p in ("/healthz", "/metrics")}
    assert routed == documented


def test_openapi_document_is_valid():
    from openapi_spec_validator import validate

    doc = yaml.safe_load(resources.files("hazardwatch.central.api").joinpath("openapi.yaml").read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc)
