"""A district with many open incidents at once, for the dashboard's scale test and bench/dashboard.py.

Each incident is one alert from its own camera on a grid (300 m apart over the demo district), published
through a real broker as edges would; central's cross-camera distance is set below the grid step so every
alert stays its own incident. Helpers read the page's state from the DOM only (the page's CSP forbids
eval, Playwright's own evaluation is used).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .central_proc import Publisher, alert_payload, alert_topic

HAZARDS = ("waterlogging", "fallen_tree", "smoke", "fire")
SOUTH_WEST = (22.52, 113.92)
STEP_DEG = 0.0027  # about 300 m
CAMERAS_PER_EDGE = 100
# Alerts 300 m apart are separate incidents only when central looks for other cameras closer than that.
CORRELATION = {"cross_camera_distance_km": 0.1}


@dataclass(frozen=True)
class Spot:
    edge: str
    cam: str
    lat: float
    lon: float
    hazard: str


def spots(n: int, first: int = 0, columns: int = 40) -> Iterator[Spot]:
    """Camera k of a grid `columns` wide, from `first`; each edge holds CAMERAS_PER_EDGE of them."""
    for k in range(first, first + n):
        row, col = divmod(k, columns)
        yield Spot(f"load-{k // CAMERAS_PER_EDGE:03d}", f"cam-{k:05d}", SOUTH_WEST[0] + row * STEP_DEG,
                   SOUTH_WEST[1] + col * STEP_DEG, HAZARDS[k % len(HAZARDS)])


def publish_incidents(pub: Publisher, n: int, first: int = 0) -> list[Spot]:
    """One new alert from each of `n` cameras; returns once the broker has them all."""
    sent = list(spots(n, first))
    for i, s in enumerate(sent):
        doc = alert_payload(first + i, edge=s.edge, cam=s.cam, alert_id=f"load-alert-{first + i:06d}",
                            hazard=s.hazard, lat=s.lat, lon=s.lon)
        pub.send(alert_topic(s.edge, s.cam), doc, wait=i == len(sent) - 1)
    return sent


def open_count(page: Any) -> int:
    """The open-incident count in the page's header."""
    n = page.locator(".count.c-open").get_attribute("data-n")
    return int(n) if n else 0


def wait_open_count(page: Any, want: int, timeout: float) -> float:
    """Seconds until the header counts `want` open incidents."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if open_count(page) >= want:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"the page counted {open_count(page)} open incidents, not {want}, after {timeout} s")


def marker_total(page: Any) -> int:
    """Incidents the map draws: single markers plus the counts of clusters (on screen and near it)."""
    singles = page.locator("#map g.inc").count()
    clusters = page.locator("#map g.cluster").evaluate_all("gs => gs.map(g => +g.dataset.count)")
    return singles + sum(clusters)


LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); })
  .observe({ type: "longtask", buffered: true });
"""


def long_tasks(page: Any, since: int = 0) -> list[float]:
    """Main-thread tasks over 50 ms (ms) recorded since the page loaded (needs LONG_TASKS as init script)."""
    return list(page.evaluate("() => window.__longTasks || []"))[since:]
