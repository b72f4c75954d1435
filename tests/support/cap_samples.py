"""The real CAP samples in ../shared/specs/cap-samples, and rewriting them for a test.

The rewrite keeps a sample's structure (elements, info blocks, parameters, geocodes) and changes only
what a test must control: identifier, message type, references, times, and polygons or circles, so a
real agency's message lands on the test cameras and is current.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hazardwatch.harness.media import REPO_ROOT


def specs_dir() -> Path | None:
    env = os.environ.get("HAZARDWATCH_SHARED_SPECS")
    path = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "specs"
    return path.resolve() if (path / "cap-samples").is_dir() else None


def require_specs() -> Path:
    path = specs_dir()
    if path is None:
        looked = os.environ.get("HAZARDWATCH_SHARED_SPECS") or REPO_ROOT.parent / "shared" / "specs"
        pytest.skip(f"CAP samples not found at {looked}/cap-samples (set HAZARDWATCH_SHARED_SPECS)")
    return path


def sample(name: str) -> str:
    return (require_specs() / "cap-samples" / name).read_bytes().decode("utf-8")


def cap_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _sub(xml: str, element: str, value: str, count: int = 0) -> str:
    """Replace the text of every <element> (any namespace prefix)."""
    pattern = re.compile(rf"(<(?:\w+:)?{element}>)(.*?)(</(?:\w+:)?{element}>)", re.S)
    return pattern.sub(lambda m: m.group(1) + value + m.group(3), xml, count=count)


def polygon_text(points: list[tuple[float, float]]) -> str:
    closed = [*points, points[0]] if points[0] != points[-1] else points
    return " ".join(f"{lat},{lon}" for lat, lon in closed)


def rewrite(
    xml: str,
    *,
    now: float,
    identifier: str | None = None,
    sender: str | None = None,
    msg_type: str | None = None,
    references: str | None = None,
    expires_in: float = 3600,
    polygon: list[tuple[float, float]] | None = None,
    circle: tuple[float, float, float] | None = None,
) -> str:
    """Make a real sample current and place it; `references=''` removes the element."""
    xml = _sub(xml, "sent", cap_time(now - 60))
    xml = _sub(xml, "effective", cap_time(now - 60))
    xml = _sub(xml, "onset", cap_time(now - 60))
    xml = _sub(xml, "expires", cap_time(now + expires_in))
    if identifier is not None:
        xml = _sub(xml, "identifier", identifier, count=1)
    if sender is not None:
        xml = _sub(xml, "sender", sender, count=1)
    if msg_type is not None:
        xml = _sub(xml, "msgType", msg_type, count=1)
    if references is not None:
        if references == "":
            xml = re.sub(r"\s*<(?:\w+:)?references>.*?</(?:\w+:)?references>", "", xml, flags=re.S)
        elif re.search(r"<(?:\w+:)?references>", xml):
            xml = _sub(xml, "references", references, count=1)
        else:
            xml = re.sub(r"(</(?:\w+:)?scope>)", rf"\1<references>{references}</references>", xml, count=1)
    if polygon is not None:
        xml = _sub(xml, "polygon", polygon_text(polygon))
    if circle is not None:
        xml = _sub(xml, "circle", f"{circle[0]},{circle[1]} {circle[2]}")
    return xml
