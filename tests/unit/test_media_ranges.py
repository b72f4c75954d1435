"""Byte ranges on stored media: what a video player asks for when it seeks."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from hazardwatch.central.api.media import ranged

BODY = bytes(range(256)) * 4  # 1024 bytes


def answer(range_header: str | None) -> tuple[int, bytes, dict]:
    headers = {"Range": range_header} if range_header is not None else {}
    resp = ranged(make_mocked_request("GET", "/x", headers=headers), BODY, "video/mp4", {"X-Test": "1"})
    return resp.status, bytes(resp.body or b""), dict(resp.headers)


def test_no_range_is_the_whole_file_and_says_ranges_are_accepted() -> None:
    status, body, headers = answer(None)
    assert (status, body) == (200, BODY)
    assert headers["Accept-Ranges"] == "bytes" and headers["X-Test"] == "1"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, 1023), ("bytes=-24", 1000, 1023), ("bytes=1000-5000", 1000, 1023)],
)
def test_one_range_is_206_with_its_bytes(header: str, start: int, end: int) -> None:
    status, body, headers = answer(header)
    assert status == 206
    assert body == BODY[start : end + 1]
    assert headers["Content-Range"] == f"bytes {start}-{end}/1024"


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "items=0-5", "bytes=-", "garbage"])
def test_what_it_does_not_serve_gets_the_whole_file(header: str) -> None:
    assert answer(header)[:2] == (200, BODY)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=9-3"])
def test_a_range_past_the_end_or_backwards_is_416(header: str) -> None:
    status, body, headers = answer(header)
    assert status == 416 and body == b""
    assert headers["Content-Range"] == "bytes */1024"
