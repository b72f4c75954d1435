"""Every route of the service, joined in one place from the resource modules (one per resource)."""

from __future__ import annotations

from hazardwatch.central.api import (
    cameras,
    deliveries,
    evidence,
    incidents,
    models,
    places,
    silences,
    system,
    warnings,
)
from hazardwatch.central.api.http import Route

ROUTES: list[Route] = [
    *system.ROUTES,
    *incidents.ROUTES,
    *silences.ROUTES,
    *cameras.ROUTES,
    *places.ROUTES,
    *deliveries.ROUTES,
    *evidence.ROUTES,
    *warnings.ROUTES,
    *models.ROUTES,
]
