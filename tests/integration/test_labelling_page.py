"""The labelling view in headless Chromium against a real central fed by a real Mosquitto: an operator
labels a queue of 20 incidents with the keyboard only (the time is printed), and the labels reach the
API; a region dragged over the picture is saved with its label."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from support.dashboard_stack import EvidenceHead, central_and_browser, upload_evidence

from hazardwatch.harness.browser import artifact_dir, signed_in_page
from hazardwatch.harness.central_proc import OPERATOR, CentralProcess, Publisher, alert_payload, alert_topic

cv2 = pytest.importorskip("cv2")
pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

N_ITEMS = 20
KIND_KEYS = {"cloud": "1", "fog": "2", "dust": "4", "vehicle": "6", "lights": "7", "other": "o"}
BOUND_S = 120.0  # the goal: 20 items in under 2 minutes (the page itself takes a few seconds)


def picture(seed: int) -> str:
    rng = np.random.default_rng(seed)
    img = np.full((240, 320, 3), (180, 150, 120), np.uint8)
    x, y = int(rng.integers(20, 240)), int(rng.integers(20, 160))
    cv2.rectangle(img, (x, y), (x + 50, y + 40), (140, 140, 150), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


def publish(pub: Publisher, central: CentralProcess, n: int, first: int = 0) -> list[int]:
    """n alerts from n cameras 11 km apart (each its own incident); their incident ids."""
    for k in range(first, first + n):
        cam = f"c{k:02d}"
        hazard = "smoke" if k % 3 else "fire"
        doc = alert_payload(
            k + 1,
            cam=cam,
            alert_id=f"alert-{cam}",
            hazard=hazard,
            lat=22.0 + 0.1 * k,
            lon=114.0,
            score=0.55 + 0.02 * (k % 20),
            snapshot=picture(k),
        )
        pub.send(alert_topic("e1", cam), doc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = central.get("/api/v1/incidents?limit=500")["items"]
        ids = sorted(i["id"] for i in items if int(i["camera_keys"][0].split("/c")[1]) >= first)
        if len(ids) >= n:
            return ids
        time.sleep(0.1)
    raise AssertionError("the incidents did not open")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CentralProcess, Publisher, Any]]:
    tmp = tmp_path_factory.mktemp("labelling")
    with central_and_browser(tmp, "labelling-test-edge", correlation={"cross_camera_distance_km": 1.0}) as s:
        yield s


def open_labelling(browser: Any, central: CentralProcess) -> Any:
    errors: list[str] = []
    page = signed_in_page(browser, central.url, OPERATOR, errors)
    page.errors = errors  # type: ignore[attr-defined]
    page.click(".tab[data-view='labelling']")
    return page


def current(page: Any) -> str:
    page.wait_for_selector("#view-labelling[data-ready='1']")
    return page.get_attribute("#view-labelling", "data-item") or ""


def wait_saved(page: Any, iid: int) -> None:
    """The item is marked done in the queue, or it was the last one; an error would show in .lab-msg."""
    done = page.locator(f"#view-labelling li[data-key='i{iid}'].done, #view-labelling .lab-empty")
    done.or_(page.locator("#view-labelling .lab-msg:not(:empty)")).first.wait_for()
    assert done.count() == 1, (iid, page.inner_text("#view-labelling .lab-msg"))


def test_an_operator_labels_20_items_with_the_keyboard(stack: tuple[CentralProcess, Publisher, Any]) -> None:
    central, pub, browser = stack
    ids = publish(pub, central, N_ITEMS)
    # five confirmed false alarms: the queue puts them first, with the kind guessed from the note
    notes = {
        ids[1]: "low cloud on the ridge",
        ids[4]: "dust from the quarry",
        ids[7]: "truck lights",
        ids[10]: "fog bank",
        ids[13]: "something odd",
    }
    for iid, note in notes.items():
        status, _ = central.request("POST", f"/api/v1/incidents/{iid}/false-alarm", {"note": note})
        assert status == 200
    queue = central.get("/api/v1/labelling/queue?limit=100")["items"]
    assert {q["incident_id"] for q in queue[:5]} == set(notes)
    page = open_labelling(browser, central)

    # what the operator decides for each incident: hazard, cannot tell, or a false alarm of some kind
    plan: dict[int, tuple[str, str | None, list[str]]] = {}
    for n, iid in enumerate(ids):
        if iid in notes:
            kind = {"cloud": "cloud", "dust": "dust", "lights": "lights", "fog": "fog"}.get(
                next((k for k in ("cloud", "dust", "lights", "fog") if k in notes[iid]), ""), "other"
            )
            # the guessed kind is already chosen for a guessable note: Enter confirms it
            plan[iid] = ("false_alarm", kind, [] if kind != "other" else [KIND_KEYS["other"]])
        elif n % 4 == 0:
            plan[iid] = ("ambiguous", None, ["a"])
        elif n % 3 == 0:
            plan[iid] = ("false_alarm", "vehicle", ["n", KIND_KEYS["vehicle"]])
        else:
            plan[iid] = ("hazard", None, ["y"])

    started = time.monotonic()
    seen: list[int] = []
    for _ in range(N_ITEMS):
        iid = int(current(page).lstrip("i"))
        seen.append(iid)
        for key in plan[iid][2]:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        wait_saved(page, iid)
    page.wait_for_selector("#view-labelling .lab-empty")
    took = time.monotonic() - started
    print(f"labelling: {N_ITEMS} items with the keyboard in {took:.1f} s ({took / N_ITEMS:.2f} s per item)")
    page.screenshot(path=str(artifact_dir("dashboard") / "dashboard-labelling-done.png"))
    assert sorted(seen) == ids
    assert took < BOUND_S, took

    labels = {lb["incident_id"]: lb for lb in central.get("/api/v1/labels")["items"]}
    assert set(labels) == set(ids)
    for iid, (verdict, kind, _keys) in plan.items():
        lb = labels[iid]
        assert (lb["verdict"], lb["false_alarm_kind"], lb["labelled_by"]) == (verdict, kind, "amy"), (iid, lb)
        assert lb["region"] is None  # nobody dragged a region
        if verdict == "hazard":
            assert lb["hazard"] in ("smoke", "fire")
    # the incident's timeline says who labelled it
    tl = central.get(f"/api/v1/incidents/{ids[0]}")["timeline"]
    assert any(e["kind"] == "labelled" and e["actor"] == "amy" for e in tl)
    assert central.get("/api/v1/labelling/queue")["items"] == []
    assert page.errors == [], page.errors
    page.context.close()


def test_a_dragged_region_is_saved_with_the_label(stack: tuple[CentralProcess, Publisher, Any]) -> None:
    central, pub, browser = stack
    (iid,) = publish(pub, central, 1, first=40)
    page = open_labelling(browser, central)
    assert current(page) == f"i{iid}"
    page.wait_for_selector("#view-labelling .lab-frame[data-ratio='320x240']")
    frame = page.locator("#view-labelling .lab-frame").bounding_box()
    page.mouse.move(frame["x"] + 0.2 * frame["width"], frame["y"] + 0.3 * frame["height"])
    page.mouse.down()
    page.mouse.move(frame["x"] + 0.5 * frame["width"], frame["y"] + 0.5 * frame["height"], steps=5)
    page.mouse.move(frame["x"] + 0.6 * frame["width"], frame["y"] + 0.7 * frame["height"], steps=5)
    page.mouse.up()
    page.wait_for_selector("#view-labelling rect.region")
    page.screenshot(path=str(artifact_dir("dashboard") / "dashboard-labelling.png"))
    page.keyboard.press("y")
    page.keyboard.press("Enter")
    wait_saved(page, iid)
    (label,) = [lb for lb in central.get("/api/v1/labels")["items"] if lb["incident_id"] == iid]
    assert label["verdict"] == "hazard"
    assert label["region"] == pytest.approx([0.2, 0.3, 0.6, 0.7], abs=0.01)
    assert page.errors == [], page.errors
    page.context.close()


def test_a_quiet_look_from_an_edge_is_offered_and_labelled_as_a_miss(
    stack: tuple[CentralProcess, Publisher, Any],
) -> None:
    central, _pub, browser = stack
    shot = base64.b64decode(picture(77))
    head = EvidenceHead(
        "quiet-c50-1700000000000",
        "c50",
        "smoke",
        "quiet",
        "snapshot",
        "image/jpeg",
        {"scores": {"smoke": 0.31}, "top": 0.31, "width": 320, "height": 240},
    )
    upload_evidence(central, "e1", "quiet-c50-snap", shot, head)
    queue = central.get("/api/v1/labelling/queue")["items"]
    assert [q["reason"] for q in queue] == ["quiet_sample"]
    page = open_labelling(browser, central)
    assert current(page) == "fe1/quiet-c50-snap"
    page.wait_for_selector("#view-labelling .lab-frame[data-ratio='320x240']")
    assert "quiet" in page.inner_text("#view-labelling .lab-title").lower()
    page.keyboard.press("y")  # the model missed smoke here
    page.keyboard.press("Enter")
    page.wait_for_selector("#view-labelling .lab-empty")
    (label,) = [lb for lb in central.get("/api/v1/labels")["items"] if lb["evidence"]]
    assert label["evidence"] == {"edge_id": "e1", "id": "quiet-c50-snap"} and label["incident_id"] is None
    assert (label["verdict"], label["hazard"], label["labelled_by"]) == ("hazard", "smoke", "amy")
    assert central.get("/api/v1/labelling/queue")["items"] == []
    assert page.errors == [], page.errors
    page.context.close()


def test_an_operator_labels_an_incident_from_its_detail_with_the_same_keys(
    stack: tuple[CentralProcess, Publisher, Any],
) -> None:
    central, pub, browser = stack
    (iid,) = publish(pub, central, 1, first=60)
    errors: list[str] = []
    page = signed_in_page(browser, central.url, OPERATOR, errors)
    page.click(f"#incidents li[data-id='{iid}']")
    block = page.locator(f"#detail .detail-label[data-incident='{iid}']")
    block.wait_for()
    assert "Not labelled yet" in block.inner_text()
    page.fill("#detail textarea.note", "n6")  # keys typed into the note are text, not a label
    assert block.locator(".lab-verdict.on").count() == 0
    page.click(f"#incidents li[data-id='{iid}']")  # the focus back on the selected row
    page.keyboard.press("n")
    page.keyboard.press("6")
    assert block.locator(".lab-kind.on").get_attribute("data-kind") == "vehicle"
    assert block.locator(".lab-verdict.on").get_attribute("data-verdict") == "false_alarm"
    page.keyboard.press("Enter")
    page.locator("#detail .dl-current[data-verdict='false_alarm']").wait_for()
    assert "False alarm (vehicle) by amy" in page.inner_text("#detail .dl-current")
    page.locator("#detail .timeline li.tl-labelled").first.wait_for()
    assert "amy labelled it: False alarm" in page.inner_text("#detail .timeline li.tl-labelled")
    block.scroll_into_view_if_needed()
    page.screenshot(path=str(artifact_dir("dashboard") / "dashboard-detail-label.png"))
    labels = central.get(f"/api/v1/incidents/{iid}/labels")["labels"]
    assert [(lb["verdict"], lb["false_alarm_kind"], lb["labelled_by"]) for lb in labels] == [
        ("false_alarm", "vehicle", "amy")
    ]
    # a second opinion with the mouse replaces it; labelling leaves the incident's state alone
    page.locator("#detail .lab-verdict[data-verdict='hazard']").click()
    page.locator("#detail .dl-save").click()
    page.locator("#detail .dl-current[data-verdict='hazard']").wait_for()
    labels = central.get(f"/api/v1/incidents/{iid}/labels")["labels"]
    assert [lb["verdict"] for lb in labels] == ["false_alarm", "hazard"] and labels[1]["hazard"] in ("smoke", "fire")
    assert central.get(f"/api/v1/incidents/{iid}")["state"] == "open"
    assert errors == [], errors
    page.context.close()
