"""The duty officer's dashboard: one HTML page and its static files, served by central itself.

The page is public (it holds no data); everything it shows comes from /api/v1 with the token the
officer logs in with (the `hw_token` cookie). Plain HTML, CSS and JavaScript modules, no build step,
nothing fetched from outside the site: the map library (Leaflet) is vendored under static/vendor/, its
layers come from GET /api/v1/map, and map tiles are fetched only from the tile server `map.tiles` names.
"""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

from hazardwatch.central.api.auth import COOKIE
from hazardwatch.central.map_config import MapConfig

PACKAGE = "hazardwatch.central.api"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".html": "text/html",
}
# The only sub-folders served: vendored libraries, each with its licence beside it.
VENDORED = {("vendor", "leaflet")}


def static_bytes(name: str, folder: tuple[str, ...] = ()) -> bytes | None:
    """A file of central/api/static (or of a vendored folder), or None: no other sub-folders, no dot
    files, known types only."""
    if not NAME.match(name) or ".." in name or not name.endswith(tuple(TYPES)):
        return None
    if folder and folder not in VENDORED:
        return None
    ref = resources.files(PACKAGE).joinpath("static", *folder, name)
    if not ref.is_file():
        return None
    return ref.read_bytes()


def content_security_policy(cfg: MapConfig) -> str:
    """Same-origin only; a configured tile server is the one outside origin images may come from."""
    img = " ".join(["'self' data: blob:", *(cfg.tiles.origins() if cfg.tiles else [])])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; media-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def _security_headers(cfg: MapConfig) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(cfg),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def add_routes(app: web.Application, cfg: MapConfig) -> None:
    """GET / (the page), GET /static/{name} and /static/vendor/... (its files), GET /logout (drops the
    login cookie). `cfg` is the map's: its tile server is the one outside origin the page may load."""

    async def index(request: web.Request) -> web.Response:
        page = static_bytes("index.html") or b""
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=_security_headers(cfg))

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        folder = tuple(p for p in (request.match_info.get("lib"), request.match_info.get("sub")) if p)
        body = static_bytes(name, ("vendor", *folder) if folder else ())
        if body is None:
            raise web.HTTPNotFound(text="no such file")
        ctype = TYPES["." + name.rsplit(".", 1)[-1]]
        return web.Response(body=body, content_type=ctype, headers=_security_headers(cfg))

    async def logout(request: web.Request) -> web.Response:
        # The cookie is httponly (scripts cannot read or clear it), so the server drops it.
        resp = web.HTTPSeeOther("/")
        resp.del_cookie(COOKIE)
        raise resp

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/static/vendor/{lib}/{name}", static)
    app.router.add_get("/static/vendor/{lib}/{sub}/{name}", static)
    app.router.add_get("/logout", logout)
