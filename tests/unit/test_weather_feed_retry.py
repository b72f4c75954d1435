"""A feed's CAP document that could not be stored is fetched whole again, not skipped as 'not modified'."""

from __future__ import annotations

import asyncio
from xml.etree.ElementTree import Element

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hazardwatch.central.config import WeatherFeedConfig
from hazardwatch.central.warnings.feed import FeedPoller

pytestmark = pytest.mark.quick

DOC = b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x1</identifier></alert>'
ETAG = '"doc-1"'


def test_a_document_whose_store_failed_is_fetched_and_handled_again() -> None:
    handled: list[str] = []
    results: list[str] = []
    not_modified = 0

    async def doc(request: web.Request) -> web.Response:
        nonlocal not_modified
        if request.headers.get("If-None-Match") == ETAG:
            not_modified += 1
            return web.Response(status=304, headers={"ETag": ETAG})
        return web.Response(body=DOC, content_type="application/cap+xml", headers={"ETag": ETAG})

    async def handle(root: Element, source: str) -> bool:
        handled.append(source)
        return len(handled) > 1  # the database was down the first time: try again

    async def reject(source: str, code: str, reason: str) -> None:
        raise AssertionError(f"nothing is rejected here: {code} {reason}")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/cap.xml", doc)
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
            cfg = WeatherFeedConfig(name="bureau", url=str(server.make_url("/cap.xml")), poll_s=1)
            poller = FeedPoller(cfg, handle, reject, lambda _feed, result: results.append(result), 1 << 20)
            for _ in range(3):
                await poller.poll_once(session)

    asyncio.run(main())
    assert len(handled) == 2  # failed once, stored on the next poll, then left alone
    assert results[-1] == "not_modified" and not_modified == 1
