"""Retained state (camera status, availability) stored once across instances: two centrals on one
PostgreSQL and one broker take each live change through the shared subscription (one of them stores it),
while an instance that subscribes later still gets the whole retained state replayed directly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hazardwatch.harness.central_proc import CentralProcess, Publisher, write_central_config
from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database
from hazardwatch.harness.edge_proc import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
CAMERAS = 60


def count(central: CentralProcess, kind: str, result: str) -> float:
    prefix = f'hazardwatch_central_messages_total{{kind="{kind}",result="{result}"}}'
    for line in central.request("GET", "/metrics")[1].splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def status(cam: int, state: str, since: float) -> dict:
    return {"schema_version": 1, "kind": "camera_status", "edge_id": "e1", "sent_at": since,
            "camera_id": f"c{cam}", "state": state, "reason": "" if state == "online" else "no frame for 15 s",
            "since": since, "last_frame_at": since}


def start(tmp_path: Path, url: str, port: int, name: str) -> CentralProcess:
    cfg = write_central_config(tmp_path / f"{name}.yaml", broker_port=port, database_url=url, instance_id=name)
    return CentralProcess(cfg, tmp_path / f"{name}.log").start()


def test_live_state_is_stored_once_and_replayed_to_a_late_instance(tmp_path: Path, mosquitto) -> None:
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    with temporary_database("postgres", tmp_path) as url:
        centrals = [start(tmp_path, url, mosquitto.port, n) for n in ("central-a", "central-b")]
        pub = Publisher(mosquitto.port)
        try:
            t0 = time.time()
            for cam in range(CAMERAS):
                pub.send(f"hazardwatch/v1/e1/cameras/c{cam}/status", status(cam, "online", t0), retain=True)
            for cam in range(0, CAMERAS, 2):  # a flap on every other camera: offline, newer
                pub.send(f"hazardwatch/v1/e1/cameras/c{cam}/status", status(cam, "offline", t0 + 1), retain=True)
            changes = CAMERAS + CAMERAS // 2

            def stored() -> float:
                return sum(count(c, "camera_status", "stored") for c in centrals)

            wait_until(lambda: stored() >= changes, 20, "every change stored")
            time.sleep(1.0)  # anything stored twice would show now
            per = [count(c, "camera_status", "stored") for c in centrals]
            dropped = [count(c, "camera_status", "taken_once") for c in centrals]
            assert sum(per) == changes, per  # each live change stored by exactly one instance
            assert all(n > 0 for n in per), per  # and the shared subscription split them
            assert dropped == [changes, changes], dropped  # every direct copy of a live change, dropped
            cams = {f"{c['edge_id']}/{c['camera_id']}": c["state"] for c in centrals[0].get("/api/v1/cameras")["items"]}
            assert cams == {f"e1/c{k}": "offline" if k % 2 == 0 else "online" for k in range(CAMERAS)}

            late = start(tmp_path, url, mosquitto.port, "central-c")
            centrals.append(late)
            wait_until(lambda: count(late, "camera_status", "stored") >= CAMERAS, 20, "the retained replay")
            assert count(late, "camera_status", "stored") == CAMERAS  # the retained state, once per camera
            cams = {f"{c['edge_id']}/{c['camera_id']}": c["state"] for c in late.get("/api/v1/cameras")["items"]}
            assert sum(s == "offline" for s in cams.values()) == CAMERAS // 2
        finally:
            pub.close()
            for c in centrals:
                c.stop()
