"""Everything a dashboard browser test drives: a private Mosquitto, a real central on SQLite, an MQTT
publisher standing in for an edge, and headless Chromium; closed in reverse order."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hazardwatch.harness.browser import browser_unavailable_reason, launch
from hazardwatch.harness.central_proc import ADMIN, CentralProcess, Publisher, write_central_config
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.procs import mosquitto_binary


@contextmanager
def central_and_browser(tmp: Path, client_id: str, **central: Any) -> Iterator[tuple[CentralProcess, Publisher, Any]]:
    """(central, publisher, browser); skips the test when Chromium, Playwright or Mosquitto is missing.
    `central` adds keys to central's config."""
    if (reason := browser_unavailable_reason()) is not None:
        pytest.skip(reason)
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not found (run .ci/install-system.sh)")
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:
        broker = stack.enter_context(MosquittoBroker(workdir=tmp / "mosquitto"))
        cfg = write_central_config(
            tmp / "central.yaml", broker_port=broker.port, database_url=f"sqlite:///{tmp}/central.db", **central
        )
        proc = stack.enter_context(CentralProcess(cfg, tmp / "central.log"))
        pub = Publisher(broker.port, client_id=client_id)
        stack.callback(pub.close)
        pw = stack.enter_context(sync_playwright())
        browser = launch(pw)
        stack.callback(browser.close)
        yield proc, pub, browser


@dataclass(frozen=True)
class EvidenceHead:
    """What an edge says about an evidence file it uploads (the X-Evidence-Meta header)."""

    alert_id: str
    camera_id: str
    hazard: str
    state: str  # new, end or quiet
    kind: str  # clip or snapshot
    content_type: str
    meta: dict = field(default_factory=dict)


def upload_evidence(central: CentralProcess, edge_id: str, name: str, data: bytes, head: EvidenceHead) -> None:
    """PUT one evidence file in one chunk as an edge's uploader does (admin token)."""
    doc = {**head.__dict__, "sha256": hashlib.sha256(data).hexdigest(), "captured_at": time.time()}
    req = urllib.request.Request(f"{central.url}/api/v1/edges/{edge_id}/evidence/{name}", data=data, method="PUT")
    req.add_header("Authorization", f"Bearer {ADMIN}")
    req.add_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
    req.add_header("X-Evidence-Meta", json.dumps(doc))
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["complete"] is True
