"""The demo's district: map layers for the dashboard and a sample rainstorm warning to push.

The GeoJSON in hazardwatch/demo_map is hand-drawn around the demo cameras (illustrative, not survey
data), so the map shows a district outline, rivers, roads and named areas with no tile server and no
internet. The warning is a CAP 1.2 message with status Exercise over the reservoir and Wutong
Mountain: the demo's central acts on Exercise messages, so a newcomer sees cameras raised on the map
and lowered again when it expires.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

DEMO_MAP = Path(__file__).resolve().parents[1] / "demo_map"
WARNING_S = 180.0  # the sample warning's lifetime: long enough to look, short enough to see it end
SITE_TZ = "Asia/Shanghai"  # the district's (Shenzhen's) zone: central's `timezone`, the dashboard's clock


def map_section() -> dict[str, Any]:
    """Central's `map:` for the demo: no tiles (offline), the district's layers and named areas."""
    return {
        "tiles": None,
        "layers": [
            {"name": "district", "file": str(DEMO_MAP / "district.geojson"),
             "style": {"color": "#94a3b8", "weight": 2.5, "fill_color": "#1e293b", "fill_opacity": 0.3}},
            {"name": "rivers", "file": str(DEMO_MAP / "rivers.geojson"), "style": {"color": "#38bdf8", "weight": 3},
             "label_property": "name"},
            {"name": "roads", "file": str(DEMO_MAP / "roads.geojson"), "style": {"color": "#cbd5e1", "weight": 2},
             "label_property": "name"},
        ],
        "areas": [{"file": str(DEMO_MAP / "areas.geojson"), "name_property": "name"}],
    }


def weather_section() -> dict[str, Any]:
    """Weather on, acting on Exercise messages too (the sample is one), checked every 2 s."""
    return {"enabled": True, "statuses": ["Actual", "Exercise"], "reconcile_s": 2}


def _cap_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def site_clock(t: float) -> str:
    """`HH:MM:SS ZONE` in the site's zone: the console must read as the dashboard does, not as this machine."""
    return f"{datetime.fromtimestamp(t, ZoneInfo(SITE_TZ)):%H:%M:%S} {SITE_TZ}"


def sample_warning(now: float, lifetime_s: float = WARNING_S) -> bytes:
    """The sample rainstorm warning, current from `now` for `lifetime_s`."""
    template = Template((DEMO_MAP / "rainstorm.cap.xml").read_text(encoding="utf-8"))
    ident = f"hazardwatch-demo-rainstorm-{int(now)}"
    return template.substitute(identifier=ident, sent=_cap_time(now - 5), expires=_cap_time(now + lifetime_s)).encode()


def push_sample_warning(central_url: str, token: str, lifetime_s: float = WARNING_S) -> str:
    """POST the sample to central; a line for the terminal saying what it does, its end in the site's zone."""
    now = time.time()
    req = urllib.request.Request(
        f"{central_url}/api/v1/warnings",
        data=sample_warning(now, lifetime_s),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            outcome = json.loads(resp.read())
    except (OSError, ValueError) as exc:  # HTTPError and URLError are OSErrors: the demo goes on without it
        return f"weather: the sample rainstorm warning was not accepted ({exc}); the demo goes on without it"
    until = site_clock(now + lifetime_s)
    return (
        f"weather: sample rainstorm warning pushed ({outcome.get('result', '?')}, CAP status Exercise, until {until}): "
        "cameras in its area go on raised watch for waterlogging and fallen trees, ringed on the map"
    )


def watch_line(items: list[dict[str, Any]]) -> str:
    """What is on raised watch now, in one line."""
    if not items:
        return "watch: every camera back to its normal patrol"
    raised = sorted({f"{w['camera_id']} {w['hazard']} {w['level']}" for w in items})
    return f"watch: {', '.join(raised)}"
