"""Request bodies are read whole, however the client's bytes arrive (a slow uplink sends them in pieces)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hazardwatch.central.api.http import read_body


async def _post_in_pieces(pieces: list[bytes], limit: int) -> tuple[int, bytes]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=await read_body(request, limit))

    app = web.Application()
    app.router.add_post("/", handler)

    async def slowly() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(0.05)  # each piece arrives on its own, as over a slow link

    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/", data=slowly())
        return resp.status, await resp.read()


@pytest.mark.quick
def test_a_body_sent_in_pieces_is_read_whole():
    pieces = [bytes([k]) * 5000 for k in range(6)]
    status, echoed = asyncio.run(_post_in_pieces(pieces, limit=100_000))
    assert status == 200 and echoed == b"".join(pieces)


@pytest.mark.quick
def test_a_body_over_the_limit_stops_one_byte_past_it():
    status, echoed = asyncio.run(_post_in_pieces([b"x" * 4000] * 3, limit=9000))
    assert status == 200 and len(echoed) == 9001
