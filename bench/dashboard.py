"""The duty officer's page with a thousand open incidents: how long it takes to load, to show one new alert,
to show a burst, to open an incident and to zoom the map, and the page's long tasks meanwhile.

    .venv/bin/python bench/dashboard.py [--incidents 1000] [--updates 10] [--burst 200]

Everything is real: a private Mosquitto, a `hazardwatch central` process on SQLite with the demo
district's map layers, headless Chromium (Debian's, through Playwright). Each incident is one alert from
its own camera on a 300 m grid (hazardwatch/harness/dashboard_load.py), published as an edge would. Times are
wall-clock from the Python side: from the sign-in click or the MQTT publish to the page's header count
(the list) and to the map's markers plus cluster counts adding up (the map), polled every 20 ms. Long
tasks are the browser's own PerformanceObserver entries (main-thread tasks over 50 ms). The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from hazardwatch.demo import district
from hazardwatch.harness.browser import launch
from hazardwatch.harness.central_proc import OPERATOR, CentralProcess, Publisher, write_central_config
from hazardwatch.harness.dashboard_load import (
    CORRELATION,
    LONG_TASKS,
    long_tasks,
    marker_total,
    publish_incidents,
    wait_open_count,
)
from hazardwatch.harness.edge_proc import wait_until
from hazardwatch.harness.mosquitto import MosquittoBroker


def wait_markers(page: Any, want: int, timeout: float) -> float:
    start = time.monotonic()
    wait_until(lambda: marker_total(page) >= want, timeout, f"{want} incidents on the map")
    return time.monotonic() - start


def task_stats(tasks: list[float]) -> dict[str, float]:
    return {"n": len(tasks), "max_ms": round(max(tasks, default=0.0), 1), "sum_ms": round(sum(tasks), 1)}


def run(n: int, updates: int, burst: int, workdir: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {"incidents": n, "updates": updates, "burst": burst}
    broker = MosquittoBroker(workdir=workdir / "mosquitto")
    broker.start()
    cfg = write_central_config(workdir / "central.yaml", broker_port=broker.port,
                               database_url=f"sqlite:///{workdir}/central.db", correlation=CORRELATION,
                               map=district.map_section())
    try:
        with CentralProcess(cfg, workdir / "central.log") as central, sync_playwright() as pw:
            pub = Publisher(broker.port, client_id="bench-dashboard")
            start = time.monotonic()
            publish_incidents(pub, n)
            wait_until(lambda: central.get("/api/v1/incidents?state=open&limit=1")["total"] == n, 300, "ingest")
            out["ingest_s"] = round(time.monotonic() - start, 2)
            print(f"{n} open incidents at central in {out['ingest_s']} s", flush=True)

            browser = launch(pw)
            ctx = browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-US")
            ctx.add_init_script(LONG_TASKS)
            page = ctx.new_page()
            page.goto(central.url + "/")
            page.wait_for_selector("#login:not([hidden])")
            page.fill("#token", OPERATOR)
            start = time.monotonic()
            page.click("#login-form button[type=submit]")
            wait_open_count(page, n, 60)
            out["load_list_s"] = round(time.monotonic() - start, 3)
            wait_markers(page, n, 60)
            out["load_map_s"] = round(time.monotonic() - start, 3)
            out["list_rows_in_dom"] = page.locator("#incidents li.incident").count()
            out["map_markers_in_dom"] = page.locator("#map .leaflet-marker-icon").count()
            out["load_long_tasks"] = task_stats(long_tasks(page))
            print(f"page: list {out['load_list_s']} s, map {out['load_map_s']} s after sign-in; "
                  f"{out['list_rows_in_dom']} rows, {out['map_markers_in_dom']} map markers", flush=True)

            seen = len(long_tasks(page))
            lists, maps = [], []
            for k in range(updates):
                start = time.monotonic()
                publish_incidents(pub, 1, first=n + k)
                wait_open_count(page, n + k + 1, 30)
                lists.append(time.monotonic() - start)
                wait_markers(page, n + k + 1, 30)
                maps.append(time.monotonic() - start)
                time.sleep(0.3)
            out["update_list_s"] = {"p50": round(statistics.median(lists), 3), "max": round(max(lists), 3)}
            out["update_map_s"] = {"p50": round(statistics.median(maps), 3), "max": round(max(maps), 3)}
            out["update_long_tasks"] = task_stats(long_tasks(page, seen))
            print(f"one new alert: list {out['update_list_s']}, map {out['update_map_s']}", flush=True)

            seen = len(long_tasks(page))
            total = n + updates + burst
            start = time.monotonic()
            publish_incidents(pub, burst, first=n + updates)
            wait_open_count(page, total, 120)
            out["burst_list_s"] = round(time.monotonic() - start, 3)
            wait_markers(page, total, 60)
            out["burst_map_s"] = round(time.monotonic() - start, 3)
            out["burst_long_tasks"] = task_stats(long_tasks(page, seen))
            print(f"burst of {burst}: list {out['burst_list_s']} s, map {out['burst_map_s']} s", flush=True)

            start = time.monotonic()
            page.locator("#incidents li.incident").first.click()
            page.locator("#detail .detail-head").wait_for(timeout=30000)
            out["open_detail_s"] = round(time.monotonic() - start, 3)
            page.click("#zoom-fit")
            start = time.monotonic()
            page.click("#zoom-in")
            page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
            out["zoom_s"] = round(time.monotonic() - start, 3)
            print(f"open an incident {out['open_detail_s']} s; zoom in {out['zoom_s']} s", flush=True)
            pub.close()
            browser.close()
    finally:
        broker.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=1000)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--burst", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw-bench-dashboard-") as tmp:
        result = run(args.incidents, args.updates, args.burst, Path(tmp))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
