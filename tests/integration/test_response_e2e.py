"""Issue 16 end to end on real parts: a GStreamer RTSP server streams a real fire video, the
`hazardwatch edge` process patrols it with the red-patch model, a private Mosquitto carries its alerts,
a `hazardwatch central` process on SQLite correlates them, and headless Chromium is the duty officer.

The officer resolves the fire while it keeps burning: it comes back within one patrol interval as a
new incident linked to the closed one, with the banner and the sound. The officer marks that one a
false alarm: the fire stays quiet inside the visible, time-bound suppression; lifting it brings the
fire back. Screenshots go to test-artifacts/response/.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hazardwatch.harness.browser import artifact_dir, browser_unavailable_reason, launch, signed_in_page
from hazardwatch.harness.central_proc import OPERATOR, CentralProcess, write_central_config
from hazardwatch.harness.edge_proc import EdgeProcess, patrol, wait_until, write_edge_config
from hazardwatch.harness.media import prepare_clip
from hazardwatch.harness.toy_models import red_patch_manifest

pytestmark = [pytest.mark.mqtt, pytest.mark.slow, pytest.mark.rtsp, pytest.mark.data]

PATROL_S = 5.0  # the fire camera's patrol interval: "comes back within one patrol interval"
SLACK_S = 3.0  # MQTT, central's 0.3 s store poll, the event stream and the page, on a shared 2-core box
CONFIRM = {"window": 3, "min_votes": 2, "threshold": 0.5, "end_after_s": 300, "still_seen_s": PATROL_S - 1}


def open_fire(central: CentralProcess) -> list[dict]:
    return [i for i in central.get("/api/v1/incidents?hazard=fire&limit=50")["items"] if i["state"] == "open"]


def test_resolved_fire_that_keeps_burning_comes_back_and_false_alarm_stays_quiet_inside_its_suppression(
    tmp_path: Path, mosquitto, rtsp_server_factory, shared_data: Path, media_cache: Path
) -> None:
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    clip = prepare_clip(shared_data / "media-furg-fire/fire/house6.mp4", media_cache, start=15, duration=10)
    server = rtsp_server_factory({"/fire": clip})
    manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
    cams = [{"id": "cam-fire", "name": "House", "source": server.url("/fire"), "hazards": {"fire": {}},
             "location": {"lat": 22.5, "lon": 114.0}, "bearing_deg": 90, "fov_deg": 60}]
    edge_cfg = write_edge_config(
        tmp_path / "edge.yaml", broker_port=mosquitto.port, cameras=cams, manifest=manifest,
        confirm=CONFIRM, patrol=patrol(PATROL_S),
    )
    central_cfg = write_central_config(tmp_path / "central.yaml", broker_port=mosquitto.port,
                                       database_url=f"sqlite:///{tmp_path}/central.db",
                                       severity_rules={"time_windows": []})  # the same severity at any hour
    shots = artifact_dir("response")
    errors: list[str] = []
    with CentralProcess(central_cfg, tmp_path / "central.log") as central, \
            EdgeProcess(edge_cfg, tmp_path / "edge.log"), sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = signed_in_page(browser, central.url, OPERATOR, errors)
            first = wait_until(lambda: (o := open_fire(central)) and o[0], 90, "the fire incident")
            row = page.locator(f"li.incident[data-id='{first['id']}']")
            row.wait_for(timeout=10000)

            # 1. resolve while it burns: it comes back within one patrol interval, linked, with sound
            row.click()
            page.wait_for_selector("#detail button[data-action='resolve']")
            # the procedure for a severe fire, with its contacts; ticking a step records who and when
            assert first["severity"] == "severe"
            page.wait_for_selector("#detail .procedure[data-id='fire-severe'] .contact[data-id='forest_fire_brigade']")
            page.check("#detail .procedure .step[data-index='0'] input")
            page.wait_for_selector("#detail .procedure .step.done[data-index='0'] .tick")
            (step,) = [e for e in central.get(f"/api/v1/incidents/{first['id']}")["timeline"] if e["kind"] == "step"]
            assert step["actor"] == "amy" and step["detail"]["done"] is True and step["detail"]["index"] == 0
            page.fill("#detail textarea.note", "brigade reports it is out")
            cues = int(page.evaluate("document.body.dataset.cues || '0'"))
            page.click("#detail button[data-action='resolve']")
            # a fire is severe: closing it asks again, saying how many procedure steps are not ticked
            page.wait_for_selector("#detail .close-confirm")
            assert "4 of 5 steps are not ticked" in page.inner_text("#detail .close-confirm")
            page.click("#detail .close-confirm button[data-confirm='resolve']")
            resolved_at = time.monotonic()
            again = page.locator("li.incident .again")
            again.wait_for(timeout=(PATROL_S + SLACK_S + 5) * 1000)
            back_s = time.monotonic() - resolved_at
            print(f"resolve -> linked incident on the page: {back_s:.1f} s (patrol interval {PATROL_S:.0f} s)")
            assert back_s <= PATROL_S + SLACK_S, back_s
            (second,) = open_fire(central)
            assert second["previous_id"] == first["id"] and second["id"] != first["id"]
            assert int(page.evaluate("document.body.dataset.cues")) == cues + 1
            assert page.evaluate("document.body.dataset.lastCueSound") == "1"
            assert page.locator("#banner").is_visible() and f"#{first['id']}" in page.inner_text("#banner")
            closed = central.get(f"/api/v1/incidents/{first['id']}")
            assert closed["state"] == "resolved" and closed["alerts_active"] == 0
            assert closed["successor_ids"] == [second["id"]] and closed["timeline"][-1]["kind"] == "recurred"
            page.click(f"li.incident[data-id='{second['id']}']")
            page.wait_for_selector("#detail .again-line[data-reason='still_seen_after_resolved']")
            page.screenshot(path=str(shots / "response-seen-again.png"))

            # 2. false alarm with a 1 h suppression: the burning fire stays quiet, visibly
            page.fill("#detail textarea.note", "test fire at the training ground")
            page.select_option("#detail select.suppress", str(3600))
            page.click("#detail button[data-action='false_alarm']")
            page.click("#detail .close-confirm button[data-confirm='false_alarm']")
            page.wait_for_selector("#detail .sup-list li.active")
            page.wait_for_selector(".count.c-suppressed")
            (sup,) = central.get("/api/v1/suppressions")["items"]
            assert sup["incident_id"] == second["id"] and sup["camera_id"] == "cam-fire"
            assert 3590 < sup["ends_at"] - sup["created_at"] <= 3600
            wait_until(lambda: central.get("/api/v1/suppressions")["items"][0]["quiet_count"] >= 2,
                       3 * PATROL_S + SLACK_S, "two looks kept quiet")
            assert open_fire(central) == [] and page.locator("li.incident[data-state='open']").count() == 0
            page.click(".tab[data-view='silences']")
            page.wait_for_selector(f"#suppressions-table tr[data-id='{sup['id']}'][data-active='1']")
            page.screenshot(path=str(shots / "response-suppressed.png"))

            # 3. lifting the suppression brings the still-burning fire back within one patrol interval
            page.click(f"#suppressions-table tr[data-id='{sup['id']}'] button[data-action='lift']")
            lifted_at = time.monotonic()
            page.locator(f"#suppressions-table tr[data-id='{sup['id']}']").wait_for(state="detached")
            page.click(".tab[data-view='incidents']")
            page.locator("li.incident[data-state='open'] .again").wait_for(timeout=(PATROL_S + SLACK_S + 5) * 1000)
            print(f"lift -> fire back on the page: {time.monotonic() - lifted_at:.1f} s")
            (third,) = open_fire(central)
            assert third["previous_id"] == second["id"]

            # 4. a suppression is time-bound: 12 s of quiet (API), then the still-burning fire comes back
            status, _ = central.request("POST", f"/api/v1/incidents/{third['id']}/false-alarm",
                                        {"note": "checking with the brigade", "suppress_s": 12})
            assert status == 200
            (sup,) = central.get("/api/v1/suppressions")["items"]
            expires = time.monotonic() + 12
            time.sleep(6)
            assert open_fire(central) == []  # still inside the suppression
            page.locator("li.incident[data-state='open'] .again").wait_for(timeout=(12 + PATROL_S + SLACK_S) * 1000)
            print(f"suppression expired -> fire back on the page {time.monotonic() - expires:.1f} s later")
            assert time.monotonic() - expires <= PATROL_S + SLACK_S
            (fourth,) = open_fire(central)
            assert fourth["previous_id"] == third["id"]
            opened = central.get(f"/api/v1/incidents/{fourth['id']}")["timeline"][0]
            assert opened["detail"]["reason"] == "still_seen_after_false_alarm"
            assert central.get(f"/api/v1/suppressions?incident_id={third['id']}&include_ended=true")["items"][0][
                "quiet_count"] >= 1 and sup["incident_id"] == third["id"]
            assert errors == [], errors
        finally:
            browser.close()


def test_a_clearly_larger_detection_breaks_through_a_false_alarm(
    tmp_path: Path, mosquitto, rtsp_server_factory, shared_data: Path
) -> None:
    """A small red patch on a real HPWREN frame is marked a false alarm in the browser and stays quiet;
    the patch grows to nine times its area (the camera, the stream and the edge unchanged): the larger
    detection breaks through the suppression as a new incident linked to the false alarm."""
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    import cv2
    from playwright.sync_api import sync_playwright

    from hazardwatch.harness.media import frames_to_clip
    from hazardwatch.harness.toy_models import paint_patch

    still = cv2.imread(str(sorted((shared_data / "smoke-hpwren/unlabeled_hpwren").glob("*.jp*g"))[0]))
    small = frames_to_clip([paint_patch(still, (0.45, 0.45, 0.52, 0.55))], tmp_path / "small.mp4", hold=100)
    large = frames_to_clip([paint_patch(still, (0.38, 0.35, 0.59, 0.65))], tmp_path / "large.mp4", hold=100)
    server = rtsp_server_factory({"/ridge": small})
    port = server.port
    manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
    cams = [{"id": "cam-ridge", "source": server.url("/ridge"), "hazards": {"fire": {}}}]
    edge_cfg = write_edge_config(
        tmp_path / "edge.yaml", broker_port=mosquitto.port, cameras=cams, manifest=manifest,
        confirm=CONFIRM, patrol=patrol(PATROL_S),
    )
    central_cfg = write_central_config(tmp_path / "central.yaml", broker_port=mosquitto.port,
                                       database_url=f"sqlite:///{tmp_path}/central.db",
                                       severity_rules={"time_windows": []})
    errors: list[str] = []
    with CentralProcess(central_cfg, tmp_path / "central.log") as central, \
            EdgeProcess(edge_cfg, tmp_path / "edge.log"), sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = signed_in_page(browser, central.url, OPERATOR, errors)
            first = wait_until(lambda: (o := open_fire(central)) and o[0], 90, "the small patch's incident")
            page.click(f"li.incident[data-id='{first['id']}']")
            page.fill("#detail textarea.note", "red signboard, not a fire")
            page.select_option("#detail select.suppress", str(3600))
            page.click("#detail button[data-action='false_alarm']")
            page.click("#detail .close-confirm button[data-confirm='false_alarm']")
            page.wait_for_selector("#detail .sup-list li.active")
            wait_until(lambda: central.get("/api/v1/suppressions")["items"][0]["quiet_count"] >= 2,
                       3 * PATROL_S + SLACK_S, "two looks kept quiet")
            assert open_fire(central) == []

            server.stop()
            rtsp_server_factory({"/ridge": large}, port=port)
            grown_at = time.monotonic()
            page.locator("li.incident[data-state='open'] .again").wait_for(timeout=(2 * PATROL_S + SLACK_S) * 1000)
            print(f"patch grown 9x -> breaks through on the page: {time.monotonic() - grown_at:.1f} s")
            (second,) = open_fire(central)
            assert second["previous_id"] == first["id"]
            opened = central.get(f"/api/v1/incidents/{second['id']}")["timeline"][0]
            assert opened["detail"]["reason"] == "stronger_than_false_alarm"
            (sup,) = central.get(f"/api/v1/suppressions?incident_id={first['id']}&include_ended=true")["items"]
            assert not sup["active"] and sup["ended_by"] == "system"
            page.click(f"li.incident[data-id='{second['id']}']")
            page.wait_for_selector("#detail .again-line[data-reason='stronger_than_false_alarm']")
            assert errors == [], errors
        finally:
            browser.close()
