"""The duty officer's dashboard: one HTML page and its static files, served by central itself.

The page is public (it holds no data); everything it shows comes from /api/v1 with the token the
officer logs in with (the `hw_token` cookie). Plain HTML, CSS and JavaScript modules, no build step,
nothing fetched from outside the site: the map is drawn from camera coordinates, and map tiles are used
only when `dashboard.tile_url` names a tile server.
"""

from __future__ import annotations

import html
import re
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from hazardwatch.central.api.auth import COOKIE
from hazardwatch.central.config import DashboardConfig

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
CONFIG_MARK = "<!--hw-config-->"


def static_bytes(name: str) -> bytes | None:
    """A file of central/api/static, or None (no sub-folders, no dot files, known types only)."""
    if not NAME.match(name) or ".." in name or not name.endswith(tuple(TYPES)):
        return None
    ref = resources.files(PACKAGE).joinpath("static").joinpath(name)
    if not ref.is_file():
        return None
    return ref.read_bytes()


def content_security_policy(cfg: DashboardConfig) -> str:
    """Same-origin only; a configured tile server is the one outside origin images may come from."""
    img = "'self' data: blob:"
    if cfg.tile_url:
        parts = urlsplit(cfg.tile_url.replace("{s}", "a"))
        img += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; media-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def render_index(cfg: DashboardConfig) -> str:
    page = (static_bytes("index.html") or b"").decode("utf-8")
    meta = [
        f'<meta name="hw-tile-url" content="{html.escape(cfg.tile_url or "", quote=True)}">',
        f'<meta name="hw-tile-attribution" content="{html.escape(cfg.tile_attribution, quote=True)}">',
    ]
    return page.replace(CONFIG_MARK, "\n  ".join(meta), 1)


def _security_headers(cfg: DashboardConfig) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(cfg),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def add_routes(app: web.Application, cfg: DashboardConfig) -> None:
    """GET / (the page), GET /static/{name} (its files), GET /logout (drops the login cookie)."""

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text=render_index(cfg), content_type="text/html", charset="utf-8", headers=_security_headers(cfg)
        )

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = static_bytes(name)
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
    app.router.add_get("/logout", logout)
