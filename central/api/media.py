"""Byte ranges for stored media (RFC 9110 section 14): a browser seeks in a clip by asking for a range,
and without `Accept-Ranges` Chromium treats the clip as unseekable (the player's position snaps back to
the start). One range per request is enough for video players; several are answered with the whole file."""

from __future__ import annotations

import re

from aiohttp import web

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def ranged(request: web.Request, body: bytes, content_type: str, headers: dict[str, str]) -> web.Response:
    """The whole body (200), the asked range (206), or 416 for a range that starts past the end."""
    size = len(body)
    base = {**headers, "Accept-Ranges": "bytes"}
    m = _RANGE.match(request.headers.get("Range", "").strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return web.Response(body=body, content_type=content_type, headers=base)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:  # a suffix: the last N bytes
        start, end = max(0, size - int(m.group(2))), size - 1
    if start >= size or end < start:
        return web.Response(status=416, headers={**base, "Content-Range": f"bytes */{size}"})
    return web.Response(
        status=206,
        body=body[start : end + 1],
        content_type=content_type,
        headers={**base, "Content-Range": f"bytes {start}-{end}/{size}"},
    )
