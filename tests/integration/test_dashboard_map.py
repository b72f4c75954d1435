"""The dashboard's map end to end: a real edge announces its cameras (position, bearing, field of view,
height) in camera_status through a real Mosquitto to a real central, and headless Chromium draws them on
a Leaflet map over tiles from a tile server this test starts, with the demo's GeoJSON layers and named
areas; an incident says where it is in words and is drawn as a stretch along the camera's view; with the
tile server gone the layers still draw. Screenshots go to test-artifacts/map/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.tile_server import TILE_RGB, TileServer

from hazardwatch.demo import district
from hazardwatch.harness.browser import artifact_dir, browser_unavailable_reason, launch, signed_in_page
from hazardwatch.harness.central_proc import (
    OPERATOR,
    CentralProcess,
    Publisher,
    alert_payload,
    alert_topic,
    write_central_config,
)
from hazardwatch.harness.edge_proc import EdgeProcess, wait_until, write_edge_config
from hazardwatch.harness.toy_models import red_patch_manifest
from hazardwatch.procs import free_port

# The demo's cameras: the reservoir one has coordinates, a height and a tilt, and never alerts here.
CAMERAS = [
    {"id": "reservoir", "name": "Shenzhen reservoir dam", "lat": 22.56, "lon": 114.13, "bearing_deg": 90.0,
     "fov_deg": 60.0, "height_m": 40.0, "tilt_deg": 4.0},
    {"id": "hillside", "name": "Wutong hillside tower", "lat": 22.60, "lon": 114.19, "bearing_deg": 40.0,
     "fov_deg": 60.0, "view_range_m": [300.0, 6000.0]},
    {"id": "valley", "name": "Yangtai valley mast", "lat": 22.66, "lon": 113.93, "bearing_deg": 300.0,
     "fov_deg": 60.0},
    {"id": "nowhere", "name": "Camera without coordinates"},
]

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def map_section(tile_url: str | None) -> dict[str, Any]:
    """The demo's layers and areas, over the test's tiles when given."""
    doc = district.map_section()
    if tile_url:
        doc["tiles"] = {"url": tile_url, "attribution": "Test tiles", "max_zoom": 18}
    return doc


def edge_cameras(folder: Path) -> list[dict[str, Any]]:
    """Image-folder cameras that see a plain scene (nothing for the red-patch model to find)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    sky = np.linspace(200, 120, 240)[:, None, None] * np.array([1.0, 0.95, 0.85])  # textured, not blank
    for i in range(3):
        img = np.clip(np.broadcast_to(sky, (240, 320, 3)) + rng.normal(0, 12, (240, 320, 3)), 0, 255)
        img[150:] = img[150:] * 0.45 + 30
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), img.astype(np.uint8))
    cams = []
    for c in CAMERAS:
        cam: dict[str, Any] = {"id": c["id"], "name": c["name"], "source": str(folder), "hazards": {"fire": {}}}
        if "lat" in c:
            cam["location"] = {"lat": c["lat"], "lon": c["lon"]}
        cam.update({k: c[k] for k in ("bearing_deg", "fov_deg", "height_m", "tilt_deg", "view_range_m") if k in c})
        cams.append(cam)
    return cams


def tile_share(png: bytes) -> float:
    """Share of a screenshot's pixels in the test tiles' colour."""
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    hit = np.all(np.abs(img.astype(int) - np.array(TILE_RGB[::-1])) <= 3, axis=2)
    return float(hit.mean())


def boxes_inside(page: Any, selector: str, container: str) -> list[str]:
    """Texts of the `selector` elements whose box pokes out of `container`'s."""
    outer = page.locator(container).bounding_box()
    cut = []
    for loc in page.locator(selector).all():
        b = loc.bounding_box()
        if b is None:
            continue
        if b["x"] < outer["x"] or b["y"] < outer["y"] or b["x"] + b["width"] > outer["x"] + outer["width"] + 0.5 \
                or b["y"] + b["height"] > outer["y"] + outer["height"] + 0.5:
            cut.append(loc.inner_text())
    return cut


def test_every_camera_on_a_tiled_map_with_layers_and_where_an_incident_is(tmp_path: Path, mosquitto) -> None:
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    tiles = TileServer().start()
    manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
    edge_cfg = write_edge_config(tmp_path / "edge.yaml", broker_port=mosquitto.port,
                                 cameras=edge_cameras(tmp_path / "plain"), manifest=manifest, edge_id="demo-edge")
    central_cfg = write_central_config(tmp_path / "central.yaml", broker_port=mosquitto.port,
                                       database_url=f"sqlite:///{tmp_path}/central.db",
                                       map=map_section(tiles.url_template))
    shots = artifact_dir("map")
    errors: list[str] = []
    try:
        with CentralProcess(central_cfg, tmp_path / "central.log") as central, \
                EdgeProcess(edge_cfg, tmp_path / "edge.log"), sync_playwright() as pw:
            def placed() -> dict[str, dict] | None:
                cams = {c["camera_id"]: c for c in central.get("/api/v1/cameras")["items"]}
                return cams if len(cams) == 4 and cams["reservoir"]["lat"] is not None else None

            cams = wait_until(placed, 60, "the edge's four cameras with their placement at central")
            res = cams["reservoir"]
            assert (res["name"], res["lat"], res["lon"], res["bearing_deg"], res["fov_deg"], res["height_m"],
                    res["tilt_deg"]) == ("Shenzhen reservoir dam", 22.56, 114.13, 90.0, 60.0, 40.0, 4.0)
            assert cams["hillside"]["view_range_m"] == [300.0, 6000.0] and cams["nowhere"]["lat"] is None
            assert central.get("/api/v1/incidents")["total"] == 0  # none of them ever alerted

            browser = launch(pw)
            page = signed_in_page(browser, central.url, OPERATOR, errors)
            for key in ("reservoir", "hillside", "valley"):
                page.locator(f"#map g.cam[data-key='demo-edge/{key}']").wait_for(timeout=10000)
            assert page.locator("#map g.cam[data-key='demo-edge/reservoir'] path.fov").count() == 1
            assert "1 camera(s) without coordinates" in page.inner_text("#map-foot")
            # tiles: asked for at a street-to-district zoom around the cameras, and drawn
            page.locator("#map .leaflet-tile-loaded").first.wait_for(timeout=10000)
            page.locator("#map[data-tiles='ok']").wait_for(timeout=10000)
            seen = tiles.seen()
            assert seen and all(9 <= z <= 15 for z, _, _ in seen), seen
            n = 2 ** seen[0][0]
            assert any(abs(x / n * 360 - 180 - 114.1) < 1 for _, x, _ in seen), seen  # near lon 114.1
            wait_until(lambda: tile_share(page.locator("#map").screenshot()) > 0.2, 10, "tile pixels on screen")
            # the configured layers and named areas
            assert page.locator("#map path.geo-district").count() == 1
            assert page.locator("#map path.geo-rivers").count() == 3
            assert page.locator("#map path.geo-roads").count() == 4
            assert page.locator("#map path.geo-area").count() == 4
            labels = page.locator("#map .geo-label").all_text_contents()  # drawn; one may wait hidden for room
            assert {"Shenzhen Reservoir", "Wutong Mountain", "Shenzhen River", "Meiguan Expressway"} <= set(labels)
            # Fit shows every camera with its name inside the map, none cut at the edges
            page.click("#zoom-in")
            page.click("#zoom-in")
            page.click("#zoom-fit")
            page.wait_for_timeout(300)
            assert page.locator("#map .cam-label").count() == 3
            assert boxes_inside(page, "#map .cam-label", "#map") == []
            page.screenshot(path=str(shots / "map-cameras.png"))

            # a fire seen by the reservoir camera only: where along its view, in which named area
            alert = alert_payload(10_000, edge="demo-edge", cam="reservoir", alert_id="alert-reservoir-0001",
                                  hazard="fire", lat=22.56, lon=114.13, bearing=90.0, fov=60.0)
            alert["boxes"] = [{"x1": 0.55, "y1": 0.45, "x2": 0.65, "y2": 0.55, "score": 0.8}]
            alert["camera_name"] = "Shenzhen reservoir dam"
            pub = Publisher(mosquitto.port)
            try:
                pub.send(alert_topic("demo-edge", "reservoir"), alert)
            finally:
                pub.close()
            row = page.locator("#incidents .incident").first
            row.wait_for(timeout=10000)
            (inc,) = central.get("/api/v1/incidents")["items"]
            place = inc["place"]
            near, far = place["range_m"]
            assert 300 < near < far < 1200, place  # 40 m up, 4 deg down: the box's bottom is some 500 m out
            assert 90 < place["bearing_deg"] < 100 and place["area"] == "Shenzhen Reservoir", place
            (lat0, lon0), (_, lon1) = place["segment"]
            assert 114.13 < lon0 < lon1 and abs(lat0 - 22.56) < 0.01
            assert "Shenzhen Reservoir" in row.inner_text()
            row.click()
            page.locator("#detail dd.where").wait_for(timeout=5000)
            assert "Shenzhen Reservoir" in page.inner_text("#detail dd.where")
            assert " m from the camera, bearing 9" in page.inner_text("#detail dd.where")
            page.locator("#map path.sight-seg.sel").wait_for(state="attached", timeout=5000)
            marker = page.locator(f"#map g.inc[data-id='{inc['id']}'] .inc-dot").bounding_box()
            camera = page.locator("#map g.cam[data-key='demo-edge/reservoir'] .cam-dot").bounding_box()
            shift = marker["x"] + marker["width"] / 2 - camera["x"] - camera["width"] / 2
            assert shift > 5, (marker, camera)  # drawn east along the view, not on the camera
            page.screenshot(path=str(shots / "map-incident-place.png"))
            assert not errors, errors
            browser.close()
    finally:
        tiles.stop()


def test_without_a_reachable_tile_server_the_configured_layers_still_draw(tmp_path: Path) -> None:
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    dead = f"http://127.0.0.1:{free_port()}/tiles/{{z}}/{{x}}/{{y}}.png"  # nothing listens there
    cfg = write_central_config(tmp_path / "central.yaml", broker_port=None,
                               database_url=f"sqlite:///{tmp_path}/central.db", map=map_section(dead))
    errors: list[str] = []
    with CentralProcess(cfg, tmp_path / "central.log") as central, sync_playwright() as pw:
        doc = central.get("/api/v1/map")
        assert doc["tiles"]["url"] == dead and [g["name"] for g in doc["layers"]] == ["district", "rivers", "roads"]
        browser = launch(pw)
        page = signed_in_page(browser, central.url, OPERATOR, errors)
        page.locator("#map[data-tiles='failed']").wait_for(timeout=15000)
        assert "Map tiles unavailable" in page.inner_text("#map-foot")
        assert page.locator("#map path.geo-district").count() == 1 and page.locator("#map path.geo-area").count() == 4
        district = page.locator("#map path.geo-district").bounding_box()
        view = page.locator("#map").bounding_box()
        assert district["width"] > view["width"] * 0.4  # Fit frames the district when there are no cameras
        page.screenshot(path=str(artifact_dir("map") / "map-no-tiles.png"))
        browser.close()
    # console errors for the refused tiles are the browser's, not the page's
    assert not [e for e in errors if "tile" not in e.lower()], errors


def test_wmts_tiles_are_asked_by_tile_matrix_row_and_column(tmp_path: Path) -> None:
    """A WMTS source (Tianditu-style KVP, a Web Mercator matrix set) is asked for the district's tiles."""
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    tiles = TileServer().start()
    section = map_section(None)
    section["tiles"] = {"kind": "wmts", "url": tiles.wmts_endpoint + "?tk=KEY", "layer": "vec",
                        "tile_matrix_set": "w", "format": "tiles", "attribution": "WMTS test"}
    cfg = write_central_config(tmp_path / "central.yaml", broker_port=None,
                               database_url=f"sqlite:///{tmp_path}/central.db", map=section)
    errors: list[str] = []
    try:
        with CentralProcess(cfg, tmp_path / "central.log") as central, sync_playwright() as pw:
            browser = launch(pw)
            page = signed_in_page(browser, central.url, OPERATOR, errors)
            page.locator("#map[data-tiles='ok']").wait_for(timeout=15000)
            query = tiles.queries[0]
            assert (query["SERVICE"], query["LAYER"], query["TILEMATRIXSET"], query["FORMAT"], query["TK"]) == (
                "WMTS", "vec", "w", "tiles", "KEY")
            z, x, _ = tiles.seen()[0]
            assert 9 <= z <= 13 and abs(x / 2**z * 360 - 180 - 114.07) < 0.5  # the district's columns
            browser.close()
    finally:
        tiles.stop()
    assert not errors, errors


LABELS_JS = """() => {
  const map = document.querySelector('#map').getBoundingClientRect();
  const shown = (e) => getComputedStyle(e).visibility === 'visible' && getComputedStyle(e).display !== 'none';
  const box = (e, kind) => { const r = e.getBoundingClientRect();
    return {kind, text: e.textContent, x1: r.left, y1: r.top, x2: r.right, y2: r.bottom}; };
  const labels = [...document.querySelectorAll('#map .cam-label, #map .geo-label')].filter(shown)
    .map((e) => box(e, 'label'))
    .filter((b) => b.x2 > map.left && b.x1 < map.right && b.y2 > map.top && b.y1 < map.bottom);
  const dots = [...document.querySelectorAll('#map .cam-dot, #map .inc-dot')].map((e) => box(e, 'dot'));
  return {labels, dots};
}"""


def clashes(found: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """Pairs of visible map labels whose boxes overlap, or that cover a camera or incident dot."""

    def hit(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a["x1"] < b["x2"] - 1 and b["x1"] < a["x2"] - 1 and a["y1"] < b["y2"] - 1 and b["y1"] < a["y2"] - 1

    labels = found["labels"]
    pairs = [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1 :] if hit(a, b)]
    return pairs + [(a["text"], "a dot") for a in labels for d in found["dots"] if hit(a, d)]


def test_map_labels_never_overlap_on_a_desk_screen_or_a_phone(tmp_path: Path, mosquitto) -> None:
    """The demo district with its three cameras, one with a fire over its dot: at 1440x900 and 390x844,
    after Fit and after zooming, no visible label covers another label or a dot; every camera keeps its
    name."""
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    cfg = write_central_config(
        tmp_path / "central.yaml",
        broker_port=mosquitto.port,
        database_url=f"sqlite:///{tmp_path}/central.db",
        map=map_section(None),
    )
    errors: list[str] = []
    with CentralProcess(cfg, tmp_path / "central.log") as central, sync_playwright() as pw:
        browser = launch(pw)
        pub = Publisher(mosquitto.port)
        try:
            for n, c in enumerate(CAMERAS[:3], 1):
                now = time.time()
                pub.send(f"hazardwatch/v1/demo-edge/cameras/{c['id']}/status", {
                    "schema_version": 1, "kind": "camera_status", "edge_id": "demo-edge", "sent_at": now,
                    "camera_id": c["id"], "state": "online", "since": now, "camera_name": c["name"],
                    **{k: c[k] for k in ("lat", "lon", "bearing_deg", "fov_deg")}}, retain=True)  # fmt: skip
                at_central = lambda n=n: len(central.get("/api/v1/cameras")["items"]) == n  # noqa: E731
                wait_until(at_central, 15, f"{n} camera(s) at central")
                if n == 1:  # one camera alone (demo --source): Fit shows the district around it, not a dot on black
                    desk = {"width": 1440, "height": 900}
                    page = signed_in_page(browser, central.url, OPERATOR, errors, viewport=desk)
                    page.locator("#map .cam-label").wait_for(timeout=10000)
                    page.wait_for_timeout(400)
                    district, view = (page.locator(s).bounding_box() for s in ("#map path.geo-district", "#map"))
                    assert district is not None and view is not None
                    assert view["width"] * 0.4 < district["width"] <= view["width"], (district, view)
                    page.context.close()
            valley = CAMERAS[2]  # a fire drawn over the valley camera's dot: its name still shows, further out
            alert = alert_payload(1, edge="demo-edge", cam="valley", alert_id="alert-valley-0001", hazard="fire",
                                  lat=valley["lat"], lon=valley["lon"], bearing=valley["bearing_deg"], fov=60.0)
            alert["camera_name"] = valley["name"]
            pub.send(alert_topic("demo-edge", "valley"), alert)
            wait_until(lambda: central.get("/api/v1/incidents")["total"] == 1, 15, "the valley's fire incident")
        finally:
            pub.close()
        for width, height in ((1440, 900), (390, 844)):
            page = signed_in_page(browser, central.url, OPERATOR, errors, viewport={"width": width, "height": height})
            page.locator("#map .cam-label").nth(2).wait_for(timeout=10000)
            page.locator("#map g.inc").wait_for(timeout=10000)
            for step in ("fit", "zoom-in", "zoom-in"):
                page.click(f"#{step}" if step != "fit" else "#zoom-fit")
                page.wait_for_timeout(400)
                found = page.evaluate(LABELS_JS)
                page.screenshot(path=str(artifact_dir("map") / f"map-labels-{width}-{step}.png"))
                assert clashes(found) == [], (width, step, clashes(found))
                if step == "fit":
                    shown = {b["text"] for b in found["labels"]}
                    assert {c["name"] for c in CAMERAS[:3]} <= shown, (width, shown)
            page.context.close()
        browser.close()
    assert not errors, errors


@pytest.mark.parametrize("tiled", [False, True], ids=["no-tiles", "tiles"])
def test_a_selected_incident_keeps_its_area_in_view_when_there_are_no_tiles(
    tmp_path: Path, mosquitto, tiled: bool
) -> None:
    """Without tiles the layers are all the map has: selecting an incident zoomed to some 100 m, leaving the
    view cone and nothing of the district. Now its named area is shown around it, name and all; with tiles
    (streets to read) it still zooms in on the stretch along the camera's view."""
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    from tests.integration.test_notification_place import EDGE, RESERVOIR, _alert, _status

    tiles = TileServer().start() if tiled else None
    cfg = write_central_config(tmp_path / "central.yaml", broker_port=mosquitto.port,
                               database_url=f"sqlite:///{tmp_path}/central.db",
                               map=map_section(tiles.url_template if tiles else None),
                               weather=district.weather_section())
    errors: list[str] = []
    pub = Publisher(mosquitto.port)
    try:
        with CentralProcess(cfg, tmp_path / "central.log") as central, sync_playwright() as pw:
            pub.send(f"hazardwatch/v1/{EDGE}/cameras/reservoir/status", _status("reservoir", RESERVOIR), retain=True)
            wait_until(lambda: central.get("/api/v1/cameras")["items"], 15, "the camera's placement")
            pub.send(alert_topic(EDGE, "reservoir"), _alert(0, "reservoir", RESERVOIR))
            (inc,) = wait_until(lambda: central.get("/api/v1/incidents")["items"], 15, "the incident")
            assert inc["place"]["area"] == "Shenzhen Reservoir" and inc["place"]["segment"], inc
            browser = launch(pw)
            page = signed_in_page(browser, central.url, OPERATOR, errors)
            page.click(f"li.incident[data-id='{inc['id']}']")
            page.locator("#map path.sight-seg.sel").wait_for(state="attached", timeout=5000)
            page.wait_for_timeout(300)  # the labels settle
            view = page.locator("#map").bounding_box()
            area = page.evaluate("""() => [...document.querySelectorAll('#map path.geo-area')].map((p) =>
              p.getBoundingClientRect()).map((r) => ({x: r.x, y: r.y, width: r.width, height: r.height}))""")
            whole = [a for a in area if a["width"] > 0 and a["x"] >= view["x"] - 1 and a["y"] >= view["y"] - 1
                     and a["x"] + a["width"] <= view["x"] + view["width"] + 1
                     and a["y"] + a["height"] <= view["y"] + view["height"] + 1]
            seg = page.locator("#map path.sight-seg.sel").bounding_box()
            assert seg is not None and seg["width"] > 3  # the stretch along the view is still drawn
            # the sample rainstorm warning rings the reservoir camera: its name stays clear of the ring
            assert "pushed (started" in district.push_sample_warning(central.url, OPERATOR, 120.0)
            ring = page.locator("#map g.cam[data-key='demo-edge/reservoir'] circle.watch")
            ring.wait_for(timeout=15000)
            page.wait_for_timeout(300)
            r = ring.bounding_box()
            name = page.locator("#map .cam-label[data-key='demo-edge/reservoir']").bounding_box()
            assert r is not None and name is not None
            assert (name["x"] >= r["x"] + r["width"] or name["x"] + name["width"] <= r["x"]
                    or name["y"] >= r["y"] + r["height"] or name["y"] + name["height"] <= r["y"]), (name, r)
            page.screenshot(path=str(artifact_dir("map") / f"map-selected-{'tiles' if tiled else 'no-tiles'}.png"))
            if tiled:
                assert not whole, (area, view)  # zoomed in on the stretch, streets to read on the tiles
            else:
                assert whole, (area, view)  # at least the incident's own area, outline whole
                label = page.locator("#map .geo-area-label:not(.lbl-hidden)", has_text="Shenzhen Reservoir")
                box = label.bounding_box()
                assert box is not None and view["x"] <= box["x"] <= view["x"] + view["width"] - box["width"]
            browser.close()
    finally:
        pub.close()
        if tiles:
            tiles.stop()
    assert not [e for e in errors if "tile" not in e.lower()], errors
