"""A map tile server for browser tests: XYZ PNG tiles generated on the fly on 127.0.0.1, every request
recorded, so a test can check that the page asked for tiles of the right zoom and place and drew them.

Each tile is a flat colour (TILE_RGB) with a darker one-pixel border, written with zlib alone (no
imaging library), so a screenshot pixel inside a tile can be told apart from the page's own background.
"""

from __future__ import annotations

import re
import struct
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

TILE_RGB = (214, 232, 200)
BORDER_RGB = (150, 170, 140)
PATH = re.compile(r"^/tiles/(\d{1,2})/(\d{1,7})/(\d{1,7})\.png$")
WMTS = "/wmts"  # KVP GetTile: TILEMATRIX, TILEROW, TILECOL (and LAYER, TILEMATRIXSET... kept in `queries`)


def png(width: int, height: int, rgb: tuple[int, int, int], border: tuple[int, int, int]) -> bytes:
    """An RGB PNG of one colour with a one-pixel border of another."""
    edge = bytes(border) * width
    inner = bytes(border) + bytes(rgb) * (width - 2) + bytes(border)
    rows = [edge if y in (0, height - 1) else inner for y in range(height)]
    raw = b"".join(b"\x00" + row for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


@dataclass
class TileServer:
    """Serves /tiles/{z}/{x}/{y}.png and WMTS GetTile at /wmts; `requests` lists (z, x, y) in arrival
    order, `queries` the WMTS requests' parameters."""

    host: str = "127.0.0.1"
    requests: list[tuple[int, int, int]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url_template(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self.host}:{self._server.server_address[1]}/tiles/{{z}}/{{x}}/{{y}}.png"

    @property
    def origin(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> TileServer:
        image = png(256, 256, TILE_RGB, BORDER_RGB)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tile = owner._tile_of(self.path)
                if tile is None:
                    self.send_error(404)
                    return
                with owner._lock:
                    owner.requests.append(tile)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(image)))
                self.end_headers()
                try:
                    self.wfile.write(image)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the page moved on before this tile arrived; it was still asked for

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="tile-server", daemon=True).start()
        return self

    @property
    def wmts_endpoint(self) -> str:
        return self.origin + WMTS

    def _tile_of(self, path: str) -> tuple[int, int, int] | None:
        if m := PATH.match(path):
            return int(m[1]), int(m[2]), int(m[3])
        url = urlsplit(path)
        query = {k.upper(): v for k, v in parse_qsl(url.query)}
        if url.path != WMTS or query.get("REQUEST") != "GetTile":
            return None
        try:
            tile = int(query["TILEMATRIX"]), int(query["TILECOL"]), int(query["TILEROW"])
        except (KeyError, ValueError):
            return None
        with self._lock:
            self.queries.append(query)
        return tile

    def seen(self) -> list[tuple[int, int, int]]:
        with self._lock:
            return list(self.requests)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
