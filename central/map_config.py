"""The dashboard map's configuration: where tiles come from, which GeoJSON layers are drawn with or without
them, and which named areas say where an incident is. GeoJSON files are read and checked when the config
loads, so a bad file stops `config check` and start-up with its path, not the page later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from pydantic import Field, PrivateAttr, field_validator, model_validator

from hazardwatch.kernel.settings import Strict, resolve_path

MAX_GEOJSON_BYTES = 16 * 1024 * 1024
GEOMETRIES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
AREA_GEOMETRIES = {"Polygon", "MultiPolygon"}
# Tile numbers in WMTS KVP requests: Leaflet fills {z}/{x}/{y}, a Web Mercator matrix set matches XYZ.
WMTS_TILE_KEYS = "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}"


class TileSource(Strict):
    """An XYZ template (OpenStreetMap style) or a WMTS GetTile endpoint (KVP) in Web Mercator."""

    kind: Literal["xyz", "wmts"] = "xyz"
    url: str = Field(
        pattern=r"^https?://[^\s]+$",
        description="xyz: http://tiles.example/{z}/{x}/{y}.png ({s}: a subdomain); wmts: the service endpoint, "
        "e.g. http://t0.tianditu.gov.cn/vec_w/wmts?tk=KEY",
    )
    layer: str | None = Field(default=None, max_length=200, description="wmts: LAYER, e.g. vec")
    tile_matrix_set: str = Field(default="GoogleMapsCompatible", max_length=200, description="wmts: a Web Mercator set")
    style: str = Field(default="default", max_length=200, description="wmts: STYLE")
    format: str = Field(default="image/png", max_length=100, description="wmts: FORMAT, e.g. tiles")
    subdomains: str = Field(default="abc", pattern=r"^[A-Za-z0-9]*$", description="Letters that replace {s}")
    max_zoom: int = Field(default=18, ge=1, le=22)
    attribution: str = Field(default="", max_length=300, description="Shown in the map's corner (plain text)")

    @model_validator(mode="after")
    def _complete(self) -> TileSource:
        if self.kind == "xyz" and not all(k in self.url for k in ("{z}", "{x}", "{y}")):
            raise ValueError("an xyz url needs {z}, {x} and {y}, e.g. http://tiles.example/{z}/{x}/{y}.png")
        if self.kind == "wmts" and not self.layer:
            raise ValueError("a wmts source needs layer")
        return self

    def template(self) -> str:
        """The URL template the page asks tiles with ({z}/{x}/{y}, and {s} for a subdomain)."""
        if self.kind == "xyz":
            return self.url
        query = {
            "SERVICE": "WMTS",
            "REQUEST": "GetTile",
            "VERSION": "1.0.0",
            "LAYER": self.layer,
            "STYLE": self.style,
            "TILEMATRIXSET": self.tile_matrix_set,
            "FORMAT": self.format,
        }
        sep = "&" if "?" in self.url else "?"
        return self.url + sep + urlencode(query) + WMTS_TILE_KEYS

    def origins(self) -> list[str]:
        """Every origin tiles may come from (one per subdomain), for the page's Content-Security-Policy."""
        letters = list(self.subdomains) if "{s}" in self.url else [""]
        out = []
        for letter in letters:
            parts = urlsplit(self.url.replace("{s}", letter))
            out.append(f"{parts.scheme}://{parts.netloc}")
        return sorted(set(out))


class LayerStyle(Strict):
    color: str = Field(default="#5b6b7f", pattern=r"^#[0-9a-fA-F]{6}$")
    weight: float = Field(default=2.0, ge=0, le=20, description="Line width in pixels")
    dash: str | None = Field(default=None, pattern=r"^[0-9 ,.]+$", description="SVG dash array, e.g. '6 4'")
    fill_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$", description="None: not filled")
    fill_opacity: float = Field(default=0.1, ge=0, le=1)


def _check_position(pos: Any, where: str) -> None:
    if not isinstance(pos, list) or len(pos) < 2 or not all(isinstance(v, int | float) for v in pos[:2]):
        raise ValueError(f"{where}: a position must be [lon, lat]")
    lon, lat = pos[0], pos[1]
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"{where}: position [{lon}, {lat}] is outside [-180..180, -90..90] (GeoJSON is lon, lat)")


def _check_coords(coords: Any, depth: int, where: str) -> None:
    if depth == 0:
        _check_position(coords, where)
        return
    if not isinstance(coords, list) or not coords:
        raise ValueError(f"{where}: coordinates must be a non-empty array")
    for item in coords:
        _check_coords(item, depth - 1, where)


DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def read_geojson(path: Path, allowed: set[str] = GEOMETRIES, name_property: str | None = None) -> dict[str, Any]:
    """A FeatureCollection from a GeoJSON file, checked; a ValueError names the file and what is wrong."""
    if not path.is_file():
        raise ValueError(f"{path}: no such GeoJSON file")
    if path.stat().st_size > MAX_GEOJSON_BYTES:
        raise ValueError(f"{path}: larger than {MAX_GEOJSON_BYTES // 2**20} MiB; simplify it")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = {"type": "FeatureCollection", "features": [doc]}
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise ValueError(f"{path}: not a GeoJSON FeatureCollection or Feature")
    for i, feature in enumerate(doc["features"]):
        where = f"{path}: features[{i}]"
        geom = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geom, dict) or geom.get("type") not in allowed:
            raise ValueError(f"{where}: geometry must be one of {', '.join(sorted(allowed))}")
        _check_coords(geom.get("coordinates"), DEPTH[geom["type"]], where)
        if name_property is not None:
            name = (feature.get("properties") or {}).get(name_property)
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"{where}: property {name_property!r} (the area's name) is missing or empty")
    return doc


class GeoLayer(Strict):
    """A GeoJSON file drawn on the map over the tiles, or alone when tiles are off or unreachable."""

    name: str = Field(min_length=1, max_length=64, description="Shown in the map's layer list")
    file: Path = Field(description="GeoJSON (lon, lat), relative to this config file")
    style: LayerStyle = LayerStyle()
    label_property: str | None = Field(default=None, description="Feature property drawn as a label, e.g. name")
    _data: dict[str, Any] = PrivateAttr(default_factory=dict)

    _file = field_validator("file")(resolve_path)

    @model_validator(mode="after")
    def _read(self) -> GeoLayer:
        self._data = read_geojson(self.file)
        return self

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class AreaLayer(Strict):
    """Named areas (districts, streets, parks): an incident is said to be in the one containing it."""

    file: Path = Field(description="GeoJSON polygons (lon, lat), relative to this config file")
    name_property: str = Field(default="name", description="The feature property holding the area's name")
    style: LayerStyle = LayerStyle(color="#8a5cf6", weight=1.5, dash="6 4")
    _data: dict[str, Any] = PrivateAttr(default_factory=dict)

    _file = field_validator("file")(resolve_path)

    @model_validator(mode="after")
    def _read(self) -> AreaLayer:
        self._data = read_geojson(self.file, AREA_GEOMETRIES, self.name_property)
        return self

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class MapConfig(Strict):
    """The dashboard's map. Without tiles it is drawn from the GeoJSON layers and cameras alone (offline)."""

    tiles: TileSource | None = Field(default=None, description="None: no tiles, the page fetches nothing outside")
    layers: list[GeoLayer] = Field(default_factory=list, max_length=32)
    areas: list[AreaLayer] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _unique(self) -> MapConfig:
        names = [layer.name for layer in self.layers]
        if len(names) != len(set(names)):
            raise ValueError("map layer names must be unique")
        return self
