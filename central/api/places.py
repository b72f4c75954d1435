"""The dashboard map's layers: tile source, GeoJSON layers and named areas, as configured (`map:`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hazardwatch.central.api.context import context
from hazardwatch.central.api.http import Route
from hazardwatch.central.map_config import MapConfig


def map_document(cfg: MapConfig) -> dict[str, Any]:
    """What the page draws under its markers; GeoJSON was read and checked when the config loaded."""
    tiles = cfg.tiles
    return {
        "tiles": None
        if tiles is None
        else {
            "kind": tiles.kind,
            "url": tiles.template(),
            "subdomains": tiles.subdomains,
            "max_zoom": tiles.max_zoom,
            "attribution": tiles.attribution,
        },
        "layers": [
            {"name": g.name, "style": g.style.model_dump(), "label_property": g.label_property, "data": g.data}
            for g in cfg.layers
        ],
        "areas": [
            {"name_property": a.name_property, "style": a.style.model_dump(), "data": a.data} for a in cfg.areas
        ],
    }


async def get_map(request: web.Request) -> web.Response:
    cfg = context(request).cfg
    return web.json_response({**map_document(cfg.map), "weather": cfg.weather.enabled})


ROUTES: list[Route] = [("GET", "/api/v1/map", get_map)]
