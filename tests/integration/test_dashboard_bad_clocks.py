"""The dashboard stays usable whatever times are stored (issue 17, point 2).

Central now bounds edge clocks at ingest, but a database filled before that (or by a future bug) may hold
`since: 1e18` or `last_frame_at: 1e308`. Such values are written straight into the store here, and the
real page in headless Chromium must still list every row without a script error.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.services import incidents
from hazardwatch.central.store import Database
from hazardwatch.contract import Alert
from hazardwatch.harness.browser import browser_unavailable_reason, launch
from hazardwatch.harness.central_proc import OPERATOR, CentralProcess, alert_payload, write_central_config

pytestmark = [pytest.mark.slow]


def store_bad_times(url: str) -> None:
    db = Database(url)
    now = time.time()
    try:
        with db.tx() as tx:
            tx.execute(
                "INSERT INTO cameras(edge_id, camera_id, name, state, reason, since, last_frame_at, updated_at) "
                "VALUES ('e1', 'north', 'North', 'offline', 'clock', 1e18, 1e308, ?)",
                (now,),
            )
            tx.execute("INSERT INTO edges(edge_id, state, since, last_seen) VALUES ('e1', 'online', -1e308, 1e18)")
            sink = alert_payload(1, at=now)
            sink["last_frame_at"] = 1e308
            incidents.apply_alert(tx, Alert.model_validate(sink), CentralConfig(broker=None), 1e17)
    finally:
        db.close()


def test_health_and_incident_list_render_rows_with_absurd_stored_times(tmp_path: Path) -> None:
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    url = f"sqlite:///{tmp_path / 'central.db'}"
    cfg = write_central_config(tmp_path / "central.yaml", broker_port=None, database_url=url)
    with CentralProcess(cfg, tmp_path / "central.log") as central, sync_playwright() as pw:
        store_bad_times(url)
        browser = launch(pw)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(central.url + "/")
            page.wait_for_selector("#login:not([hidden])")
            page.fill("#token", OPERATOR)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_selector("#incident-list li.incident, li.incident", timeout=10_000)
            page.click(".tab[data-view='health']")
            page.locator("#cameras-table tr[data-key='e1/north']").wait_for(timeout=10_000)
            page.locator("#edges-table tr[data-edge='e1']").wait_for(timeout=10_000)
            assert "?" in page.locator("#cameras-table tr[data-key='e1/north']").inner_text()
            assert errors == [], errors
        finally:
            browser.close()
