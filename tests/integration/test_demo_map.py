"""`hazardwatch demo` as a newcomer sees it on the map: the district's layers with no tile server, every
demo camera placed from its edge's status (the reservoir camera never alerts), and the sample rainstorm
warning the demo pushes raising the two cameras in its area on the map and lowering them when it ends.
"""

from __future__ import annotations

import signal
import time

import pytest

from hazardwatch.harness.browser import artifact_dir, browser_unavailable_reason, launch, signed_in_page
from hazardwatch.procs import free_port, mosquitto_binary
from tests.integration.test_demo import START_S, DemoRun, get

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

WARNING_S = 25.0
RAISED = {"scene-reservoir", "scene-hillside"}  # inside the sample warning's polygon; scene-valley is not


def test_demo_map_shows_the_district_every_camera_and_the_rainstorm_watch_rise_and_end() -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    demo = DemoRun("--port", str(free_port()), "--embedded-broker", "mosquitto", "--warning-s", str(WARNING_S))
    errors: list[str] = []
    try:
        dashboard = demo.wait_line("dashboard: ", START_S).split()[1].rstrip("/")
        token = demo.wait_line("token: ", 5).split(" ", 1)[1].strip()
        pushed = demo.wait_line("weather: ", 10)
        assert "sample rainstorm warning pushed (started, CAP status Exercise" in pushed, pushed
        raised = demo.wait_line("watch: ", 40)
        assert all(cam in raised for cam in RAISED) and "scene-valley" not in raised, raised
        watch = get(dashboard + "/api/v1/watch", token)["items"]
        assert {(w["camera_id"], w["hazard"], w["level"]) for w in watch} >= {
            (c, "waterlogging", "high") for c in RAISED
        }
        cams = {c["camera_id"]: c for c in get(dashboard + "/api/v1/cameras", token)["items"]}
        assert cams["scene-reservoir"]["lat"] == 22.56 and cams["scene-reservoir"]["height_m"] == 35.0

        with sync_playwright() as pw:
            browser = launch(pw)
            page = signed_in_page(browser, dashboard, token, errors)
            page.locator("#map path.geo-district").wait_for(timeout=10000)
            assert page.locator("#map path.geo-area").count() == 4
            for cam in ("scene-reservoir", "scene-hillside", "scene-valley"):
                page.locator(f"#map g.cam[data-key='demo-edge/{cam}']").wait_for(timeout=10000)
            page.locator("#map g.cam[data-watch='high']").nth(1).wait_for(timeout=10000)
            assert page.locator("#map g.cam[data-watch]").count() == 2
            assert page.locator("#map g.cam[data-key='demo-edge/scene-valley'][data-watch]").count() == 0
            foot = page.inner_text("#map-foot")
            assert "Raised watch: 2 cameras — Rainstorm warning (severe)" in foot, foot
            # on the Chinese page the footer is Chinese but for the agency's own event name
            page.click("#lang")
            page.wait_for_function("() => document.querySelector('#map-foot').innerText.includes('加密巡查')")
            foot = page.inner_text("#map-foot")
            assert "加密巡查：2 路摄像机 — Rainstorm预警（严重）" in foot and "Severe" not in foot, foot
            page.click("#lang")
            page.wait_for_function("() => document.querySelector('#map-foot').innerText.includes('Raised watch')")
            # the warning's CAP polygon is drawn in its severity's colour over the cameras it raised
            warning = get(dashboard + "/api/v1/warnings?state=active", token)["items"][0]
            assert warning["geometry"]["features"][0]["geometry"]["coordinates"][0][0] == [114.08, 22.52]
            area = page.locator("#map path.warning.sev-severe")
            area.wait_for(timeout=10000)
            assert area.count() == 1
            box = area.bounding_box()
            assert box is not None
            for cam in ("scene-reservoir", "scene-hillside", "scene-valley"):
                dot = page.locator(f"#map g.cam[data-key='demo-edge/{cam}'] circle.cam-dot").bounding_box()
                assert dot is not None
                cx, cy = dot["x"] + dot["width"] / 2, dot["y"] + dot["height"] / 2
                inside = box["x"] <= cx <= box["x"] + box["width"] and box["y"] <= cy <= box["y"] + box["height"]
                assert inside == (cam in RAISED), (cam, box, dot)
            assert page.inner_text("#legend .warn-key[data-severity='severe']") == "Rainstorm warning (severe)"
            page.mouse.move(1, 1)  # off the polygon: its headline shows on hover only
            page.screenshot(path=str(artifact_dir("map") / "demo-rainstorm-watch.png"))
            # zoomed in on the valley, the warning's legend entry brings its whole area back into view
            for _ in range(3):
                page.click("#zoom-in")
            mapbox, zoomed = page.locator("#map").bounding_box(), area.bounding_box()
            assert mapbox is not None and zoomed is not None
            assert (
                zoomed["x"] + zoomed["width"] > mapbox["x"] + mapbox["width"]
                or zoomed["y"] < mapbox["y"]
                or (zoomed["y"] + zoomed["height"] > mapbox["y"] + mapbox["height"])
            ), (zoomed, mapbox)  # partly off screen
            page.click("#legend .warn-key[data-severity='severe']")
            shown = area.bounding_box()
            assert shown is not None
            assert mapbox["x"] <= shown["x"] and shown["x"] + shown["width"] <= mapbox["x"] + mapbox["width"] + 1
            assert mapbox["y"] <= shown["y"] and shown["y"] + shown["height"] <= mapbox["y"] + mapbox["height"] + 1
            assert shown["width"] > 0.5 * mapbox["width"] or shown["height"] > 0.5 * mapbox["height"]
            page.click("#zoom-fit")
            lowered = demo.wait_line("watch: every camera back to its normal patrol", WARNING_S + 30)
            assert lowered
            page.locator("#map g.cam[data-watch]").first.wait_for(state="detached", timeout=15000)
            assert "Raised watch" not in page.inner_text("#map-foot")
            page.locator("#map path.warning").wait_for(state="detached", timeout=15000)
            assert page.locator("#legend .warn-key").count() == 0
            # a fire the demo's edge detects says where it is
            deadline = time.monotonic() + 60
            items: list[dict] = []
            while time.monotonic() < deadline and not items:
                items = [i for i in get(dashboard + "/api/v1/incidents", token)["items"] if i["camera_count"] == 1]
                time.sleep(1)
            assert items, demo.output()
            place = items[0]["place"]
            assert place["range_m"][0] < place["range_m"][1] <= 6000 and len(place["segment"]) == 2, place
            # the demo's edge uploads its clips with its own edge token: the detail plays one
            iid = items[0]["id"]
            deadline = time.monotonic() + 60
            files: list[dict] = []
            while time.monotonic() < deadline and not any(f["kind"] == "clip" for f in files):
                files = get(f"{dashboard}/api/v1/incidents/{iid}/labels", token)["evidence_files"]
                time.sleep(1)
            assert any(f["kind"] == "clip" for f in files), (files, demo.output())
            page.click(f"#incidents li[data-id='{iid}']")
            page.locator("#detail video").first.wait_for(timeout=15000)
            page.screenshot(path=str(artifact_dir("map") / "demo-map.png"))
            browser.close()
        assert not errors, errors
        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(45) == 0, demo.output()
    finally:
        demo.kill()
