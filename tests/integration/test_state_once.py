"""Retained state (camera status, availability) stored once across instances: two centrals on one
PostgreSQL and one broker take each live change through the shared subscription (one of them stores it),
while an instance that subscribes later still gets the whole retained state replayed directly. Once its
replay is over an instance takes the direct subscription down, so each live change reaches it once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hazardwatch.harness.central_proc import CentralProcess, Publisher, write_central_config
from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database
from hazardwatch.harness.edge_proc import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
CAMERAS = 60


def metric(central: CentralProcess, prefix: str) -> float:
    for line in central.request("GET", "/metrics")[1].splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def count(central: CentralProcess, kind: str, result: str) -> float:
    return metric(central, f'hazardwatch_central_messages_total{{kind="{kind}",result="{result}"}}')


def replaying(central: CentralProcess) -> bool:
    return metric(central, "hazardwatch_central_state_replay ") == 1.0


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
            wait_until(lambda: not any(replaying(c) for c in centrals), 20, "the replay subscriptions taken down")
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
            assert dropped == [0, 0], dropped  # the replay is over: no direct copy of a live change arrived
            cams = {f"{c['edge_id']}/{c['camera_id']}": c["state"] for c in centrals[0].get("/api/v1/cameras")["items"]}
            assert cams == {f"e1/c{k}": "offline" if k % 2 == 0 else "online" for k in range(CAMERAS)}

            late = start(tmp_path, url, mosquitto.port, "central-c")
            centrals.append(late)
            wait_until(lambda: count(late, "camera_status", "stored") >= CAMERAS, 20, "the retained replay")
            assert replaying(late)  # still open: a live change now reaches it twice and is taken once
            copies = count(late, "camera_status", "taken_once")
            assert copies == 0  # the shared subscription asked for no retained replay: it came once, directly
            pub.send("hazardwatch/v1/e1/cameras/c1/status", status(1, "offline", t0 + 2), retain=True)
            wait_until(lambda: count(late, "camera_status", "taken_once") > copies, 10, "the direct copy dropped")
            wait_until(lambda: sum(count(c, "camera_status", "stored") for c in centrals) >= changes + CAMERAS + 1,
                       10, "the live change stored")
            time.sleep(1.0)
            assert count(late, "camera_status", "stored") in (CAMERAS, CAMERAS + 1)  # the replay, once per camera
            assert sum(count(c, "camera_status", "stored") for c in centrals) == changes + CAMERAS + 1
            cams = {f"{c['edge_id']}/{c['camera_id']}": c["state"] for c in late.get("/api/v1/cameras")["items"]}
            assert sum(s == "offline" for s in cams.values()) == CAMERAS // 2 + 1

            wait_until(lambda: not replaying(late), 20, "the late replay subscription taken down")
            before = [count(c, "camera_status", "taken_once") for c in centrals]
            stored_before = sum(count(c, "camera_status", "stored") for c in centrals)
            pub.send("hazardwatch/v1/e1/cameras/c3/status", status(3, "offline", t0 + 3), retain=True)
            wait_until(lambda: sum(count(c, "camera_status", "stored") for c in centrals) > stored_before, 10,
                       "a live change after every replay")
            time.sleep(1.0)
            assert sum(count(c, "camera_status", "stored") for c in centrals) == stored_before + 1
            assert [count(c, "camera_status", "taken_once") for c in centrals] == before  # it arrived once
        finally:
            pub.close()
            for c in centrals:
                c.stop()


def test_without_subscription_identifiers_the_state_subscription_stays(tmp_path: Path, mosquitto) -> None:
    """MQTT 3.1.1 has no subscription identifiers, so the direct subscription is the state's only way in:
    it must never be taken down, however long the replay has been quiet."""
    from hazardwatch.central.ingest.mqtt_ingest import REPLAY_QUIET_S

    cfg = write_central_config(
        tmp_path / "c311.yaml", broker_port=mosquitto.port, database_url=f"sqlite:///{tmp_path / 'c.db'}",
        broker={"host": "127.0.0.1", "port": mosquitto.port, "protocol": "3.1.1"},
    )  # fmt: skip
    central = CentralProcess(cfg, tmp_path / "c311.log").start()
    pub = Publisher(mosquitto.port)
    try:
        time.sleep(REPLAY_QUIET_S + 1.5)  # past the moment an MQTT 5 instance would take its copy down
        assert not replaying(central)
        t0 = time.time()
        pub.send("hazardwatch/v1/e9/cameras/c1/status", status(1, "offline", t0) | {"edge_id": "e9"}, retain=True)

        def e9() -> dict[str, str]:
            return {c["camera_id"]: c["state"] for c in central.get("/api/v1/cameras")["items"] if c["edge_id"] == "e9"}

        wait_until(lambda: e9() == {"c1": "offline"}, 10, "the live change stored")
        assert count(central, "camera_status", "taken_once") == 0  # no identifiers: nothing told apart
    finally:
        pub.close()
        central.stop()
