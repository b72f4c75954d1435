"""The models page in headless Chromium against a real central fed by a real Mosquitto: a registered
candidate's comparison with the running model on the labelled set (the `models compare --json` object,
uploaded with the candidate or later), the canary picker (which edges, with their cameras, and which one
first), and a rollout button that asks again before rolling out a candidate that catches fewer hazards or
was never compared."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from support.dashboard_stack import central_and_browser

from hazardwatch.contract import Heartbeat, Topics
from hazardwatch.harness.browser import artifact_dir, signed_in_page
from hazardwatch.harness.central_proc import ADMIN, OPERATOR, CentralProcess, Publisher
from tests.integration.test_rollout import multipart

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def run(model: str, tp: int, fp: int) -> dict[str, Any]:
    p, r = tp / max(1, tp + fp), tp / 40
    return {
        "model": model, "threshold": 0.9, "n_pos": 40, "n_neg": 40, "tp": tp, "fp": fp, "fn": 40 - tp, "tn": 40 - fp,
        "precision": round(p, 4), "recall": r, "f1": round(2 * p * r / (p + r), 4), "ms_per_image": 4.2,
    }  # fmt: skip


def comparison(version: str, tp: int, fp: int) -> bytes:
    """What `hazardwatch models compare smoke --json` prints: the shipped model caught 31 of 40 plumes."""
    missed = [f"smoke/smoke/p{i}.jpg" for i in range(max(0, 31 - tp))]
    caught = [f"smoke/smoke/q{i}.jpg" for i in range(max(0, tp - 31))]
    doc = {
        "running": run("smoke-hpwren 1.0.0", 31, 0),
        "candidate": run(f"smoke-v2 {version}", tp, fp),
        "delta": {},
        "changes": {"caught": caught, "missed": missed, "new_false_alarms": [], "false_alarms_gone": []},
    }
    return json.dumps(doc).encode()


def register(central: CentralProcess, version: str, compared: bytes | None) -> dict[str, Any]:
    data = f"onnx bytes of {version}".encode()
    manifest = {
        "name": "smoke-v2", "version": version, "hazard": "smoke", "file": "smoke-v2.onnx",
        "sha256": hashlib.sha256(data).hexdigest(), "input": {"width": 320, "height": 240},
        "output": {"kind": "tile_scores", "classes": ["smoke"], "hazard_classes": ["smoke"]}, "threshold": 0.9,
    }  # fmt: skip
    parts = {
        "manifest": ("manifest.json", json.dumps(manifest).encode(), "application/json"),
        "file": ("smoke-v2.onnx", data, "application/octet-stream"),
    }
    if compared is not None:
        parts["comparison"] = ("comparison.json", compared, "application/json")
    body, ctype = multipart(parts)
    req = urllib.request.Request(central.url + "/api/v1/models", data=body, method="POST")
    req.add_header("Authorization", f"Bearer {ADMIN}")
    req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CentralProcess, Publisher, Any]]:
    with central_and_browser(tmp_path_factory.mktemp("models"), "models-test-edge") as s:
        yield s


def test_the_models_page_shows_the_comparison_and_warns_before_a_worse_rollout(
    stack: tuple[CentralProcess, Publisher, Any],
) -> None:
    central, pub, browser = stack
    beat = Heartbeat(edge_id="e1", sent_at=time.time(), uptime_s=5, cameras_total=1, cameras_online=1, outbox_depth=0)
    pub.send(Topics(edge_id="e1").heartbeat, beat.model_dump(mode="json"))
    worse = register(central, "2.0.0", comparison("2.0.0", 28, 0))  # uploaded with the candidate
    assert worse["comparison"]["summary"]["catches_fewer"] is True
    register(central, "2.1.0", None)
    status, answer = central.request("PUT", "/api/v1/models/smoke-v2/2.1.0/comparison", token=ADMIN,
                                     body=json.loads(comparison("2.1.0", 35, 1)))  # fmt: skip
    assert status == 200 and answer["summary"]["caught"] == 4, answer
    status, answer = central.request("PUT", "/api/v1/models/smoke-v2/2.1.0/comparison", token=OPERATOR, body={})
    assert status == 403
    status, answer = central.request(
        "PUT", "/api/v1/models/smoke-v2/2.1.0/comparison", token=ADMIN, body=json.loads(comparison("2.0.0", 35, 1))
    )
    assert status == 400 and "not this version (smoke-v2 2.1.0)" in answer["detail"], answer
    register(central, "2.2.0", None)  # never compared
    deadline = time.monotonic() + 10
    while not central.get("/api/v1/edges")["items"] and time.monotonic() < deadline:
        time.sleep(0.2)

    errors: list[str] = []
    page = signed_in_page(browser, central.url, OPERATOR, errors)
    assert page.locator("#tab-models").is_hidden()  # an operator neither registers nor rolls out
    page.context.close()
    page = signed_in_page(browser, central.url, ADMIN, errors)
    page.click(".tab[data-view='models']")
    card = page.locator(".model-card[data-key='smoke-v2/2.0.0']")
    card.wait_for()
    assert card.locator(".cmp").get_attribute("data-verdict") == "worse"
    assert "compared with the running model: 3 fewer hazards caught, no more false alarms." in card.inner_text()
    assert card.locator("tr[data-row='caught'] td").all_inner_texts() == ["Hazards caught", "31 / 40", "28 / 40", "-3"]
    better = page.locator(".model-card[data-key='smoke-v2/2.1.0']")
    assert better.locator(".cmp").get_attribute("data-verdict") == "mixed"
    assert "Not compared" in page.inner_text(".model-card[data-key='smoke-v2/2.2.0']")

    card.locator("button.rollout").click()  # catches fewer: asked again, nothing started yet
    warning = card.locator(".rollout-warning")
    warning.wait_for()
    assert "misses 3 of 40 hazards the running model catches" in warning.inner_text()
    card.screenshot(path=str(artifact_dir("dashboard") / "dashboard-models.png"))
    assert central.get("/api/v1/rollouts", token=ADMIN)["items"] == []
    warning.locator("button.ghost").click()
    warning.wait_for(state="detached")
    assert central.get("/api/v1/rollouts", token=ADMIN)["items"] == []

    page.locator(".model-card[data-key='smoke-v2/2.2.0'] button.rollout").click()  # never compared: asked too
    page.locator(".model-card[data-key='smoke-v2/2.2.0'] .rollout-warning").wait_for()
    assert "never compared" in page.inner_text(".model-card[data-key='smoke-v2/2.2.0'] .rollout-warning")

    card.locator("button.rollout").click()
    card.locator("button.rollout-anyway").click()
    card.locator(".action-msg", has_text="Rollout #1 started: e1 only.").wait_for()
    (rollout,) = central.get("/api/v1/rollouts", token=ADMIN)["items"]
    assert (rollout["model"]["version"], rollout["canary"], rollout["created_by"]) == ("2.0.0", "e1", "root")
    page.locator(".rollouts tr[data-id='1']").wait_for()
    assert errors == [], errors
    page.context.close()


def announce(pub: Publisher, edge: str, cameras: list[str]) -> None:
    """An edge's heartbeat and its cameras' status, as the edge publishes them."""
    now = time.time()
    beat = Heartbeat(
        edge_id=edge, sent_at=now, uptime_s=5, cameras_total=len(cameras), cameras_online=len(cameras), outbox_depth=0
    )
    pub.send(Topics(edge_id=edge).heartbeat, beat.model_dump(mode="json"))
    for i, name in enumerate(cameras):
        pub.send(f"hazardwatch/v1/{edge}/cameras/c{i}/status", {
            "schema_version": 1, "kind": "camera_status", "edge_id": edge, "sent_at": now, "camera_id": f"c{i}",
            "state": "online", "since": now, "camera_name": name}, retain=True)  # fmt: skip


def test_the_maintainer_picks_the_canary_edge_and_which_edges_follow(
    stack: tuple[CentralProcess, Publisher, Any],
) -> None:
    """Runs after the test above (module stack): e1 is in its smoke rollout #1, so it cannot be picked."""
    central, pub, browser = stack
    announce(pub, "e2", ["Wutong hillside tower", "Yangtai valley mast"])
    announce(pub, "e3", ["Shenzhen reservoir dam"])
    deadline = time.monotonic() + 10
    while len(central.get("/api/v1/cameras")["items"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(central.get("/api/v1/edges")["items"]) == 3
    before = {r["id"] for r in central.get("/api/v1/rollouts", token=ADMIN)["items"]}

    errors: list[str] = []
    page = signed_in_page(browser, central.url, ADMIN, errors, viewport={"width": 390, "height": 844})
    page.click(".tab[data-view='models']")
    card = page.locator(".model-card[data-key='smoke-v2/2.1.0']")
    picker = card.locator(".canary-picker")
    picker.wait_for()
    busy = picker.locator("li[data-edge='e1']")
    assert busy.locator("input.pick-edge").is_disabled() and "in rollout #1 of this hazard" in busy.inner_text()
    e2, e3 = picker.locator("li[data-edge='e2']"), picker.locator("li[data-edge='e3']")
    assert "Wutong hillside tower, Yangtai valley mast" in e2.inner_text()
    assert "Shenzhen reservoir dam" in e3.inner_text()
    assert (e2.get_attribute("data-picked"), e3.get_attribute("data-picked")) == ("1", "1")  # every free edge
    assert e2.get_attribute("data-canary") == "1"  # the first, until the maintainer picks another
    e3.locator(".pick-canary input").check()
    assert card.locator("button.rollout").inner_text() == "Roll out: e3 first, then 1 more edge(s)"
    e2.locator("input.pick-edge").uncheck()
    assert card.locator("button.rollout").inner_text() == "Roll out: e3 first, then 0 more edge(s)"
    e3.locator("input.pick-edge").uncheck()  # nothing picked: nothing to roll out
    assert card.locator("button.rollout").is_disabled()
    assert e2.get_attribute("data-canary") == e3.get_attribute("data-canary") == "0"
    e2.locator("input.pick-edge").check()
    e3.locator(".pick-canary input").check()  # picking the canary puts it back in
    assert (e2.get_attribute("data-picked"), e3.get_attribute("data-picked"), e3.get_attribute("data-canary")) == (
        "1",
        "1",
        "1",
    )
    # the picker fits a phone: nothing wider than the screen, and an admin's five tabs all on it
    width = page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= 390, width
    tabs = [page.locator(f".tab[data-view='{v}']").bounding_box() for v in ("incidents", "models")]
    assert all(b is not None and b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in tabs), tabs
    first = card.locator("table.cmp-table tr[data-row='caught'] td").nth(1)
    assert first.get_attribute("data-label") == "Running: smoke-hpwren 1.0.0"  # a card on a phone says whose figure
    picker.screenshot(path=str(artifact_dir("dashboard") / "dashboard-models-canary-picker.png"))

    card.locator("button.rollout").click()  # 2.1.0 adds a false alarm: asked again
    card.locator("button.rollout-anyway").click()
    card.locator(".action-msg", has_text="canary e3, then the other 1 edge(s)").wait_for()
    (made,) = [r for r in central.get("/api/v1/rollouts", token=ADMIN)["items"] if r["id"] not in before]
    assert made["canary"] == "e3" and made["model"]["version"] == "2.1.0"
    assert {e["edge_id"]: e["role"] for e in made["edges"]} == {"e3": "canary", "e2": "wave"}
    picker.locator("li[data-edge='e3'] .pick-busy").wait_for()  # busy now, for the next smoke version too
    assert f"Rollout #{made['id']} under way: waiting for the canary e3" in card.locator(".model-rolling").inner_text()
    assert card.locator("button.rollout").inner_text().startswith("Every edge is in a rollout of this hazard")
    assert page.locator(".model-card[data-key='smoke-v2/2.2.0'] li[data-edge='e2'] input.pick-edge").is_disabled()
    assert errors == [], errors
    page.context.close()
