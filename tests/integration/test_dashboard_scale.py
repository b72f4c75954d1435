"""The dashboard with a thousand open incidents (a typhoon night): real Mosquitto, real central, headless
Chromium. Every open incident is counted and on the map (clustered where markers would overlap), the list
draws a page of rows and more as it scrolls, and a new alert still shows within seconds. The figures
(load, update and click times, long tasks) are measured by bench/dashboard.py; this test only checks the
page stays usable.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hazardwatch.demo import district
from hazardwatch.harness.browser import artifact_dir, browser_unavailable_reason, launch, signed_in_page
from hazardwatch.harness.central_proc import OPERATOR, CentralProcess, Publisher, write_central_config
from hazardwatch.harness.dashboard_load import CORRELATION, marker_total, publish_incidents, wait_open_count
from hazardwatch.harness.edge_proc import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

N = 1000


def test_a_thousand_open_incidents_are_counted_mapped_and_the_page_stays_usable(tmp_path: Path, mosquitto) -> None:
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    cfg = write_central_config(tmp_path / "central.yaml", broker_port=mosquitto.port,
                               database_url=f"sqlite:///{tmp_path}/central.db", correlation=CORRELATION,
                               map=district.map_section())
    errors: list[str] = []
    with CentralProcess(cfg, tmp_path / "central.log") as central, sync_playwright() as pw:
        pub = Publisher(mosquitto.port)
        try:
            publish_incidents(pub, N)
            wait_until(lambda: central.get("/api/v1/incidents?state=open&limit=1")["total"] == N, 120,
                       f"{N} open incidents at central")
            browser = launch(pw)
            page = signed_in_page(browser, central.url, OPERATOR, errors)
            wait_open_count(page, N, 30)
            # the list draws a page of rows, and the next as its end scrolls into view
            assert page.locator("#incidents li.incident").count() == 100
            page.locator("#incidents li.more").scroll_into_view_if_needed()
            wait_until(lambda: page.locator("#incidents li.incident").count() == 200, 5, "the next page of rows")
            # every open incident is on the map, single or in a counted cluster
            page.click("#zoom-fit")
            wait_until(lambda: marker_total(page) == N, 10, f"{N} incidents on the map")
            page.screenshot(path=str(artifact_dir("map") / "map-1000-incidents.png"))
            assert page.locator("#map g.cluster").count() >= 1
            # a thousand cameras on screen are dots on one canvas, without names; incidents are clustered
            assert page.locator("#map.dense canvas").count() == 1 and page.locator("#map .cam-label").count() == 0
            markers = page.locator("#map .leaflet-marker-icon").count()
            assert markers < N / 4, markers
            # a new alert still shows at once
            start = time.monotonic()
            publish_incidents(pub, 1, first=N)
            wait_open_count(page, N + 1, 10)
            shown = time.monotonic() - start
            assert shown < 5, shown
            wait_until(lambda: marker_total(page) == N + 1, 5, "the new incident on the map")
            start = time.monotonic()
            page.locator("#incidents li.incident").first.click()
            page.locator("#detail .detail-head").wait_for(timeout=5000)
            assert time.monotonic() - start < 5
            browser.close()
        finally:
            pub.close()
    assert not errors, errors
