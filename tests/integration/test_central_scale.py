"""Several central instances on one PostgreSQL and one MQTT shared subscription."""

from __future__ import annotations

import json
import threading
import time

import pytest

from hazardwatch.central.config import BrokerConfig, CentralConfig, CorrelationConfig
from hazardwatch.central.incidents.places import lock_keys
from hazardwatch.central.ingest.mqtt_ingest import Incoming, MqttIngest
from hazardwatch.central.metrics import CentralMetrics
from hazardwatch.central.store import Database
from hazardwatch.contract import Alert
from hazardwatch.harness.central_proc import CentralProcess, Publisher, alert_payload, alert_topic, write_central_config
from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database
from hazardwatch.harness.edge_proc import wait_until
from hazardwatch.harness.receiver import Receiver

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
WATER = "waterlogging"


def stored_by(central: CentralProcess) -> float:
    for line in central.request("GET", "/metrics")[1].splitlines():
        if line.startswith('hazardwatch_central_messages_total{kind="alert",result="stored"}'):
            return float(line.split()[-1])
    return 0.0


def test_two_instances_share_load_without_splitting_incidents(tmp_path, mosquitto):
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    pairs = 30
    with temporary_database("postgres", tmp_path) as url, Receiver(secret="s3cret") as receiver:
        centrals = []
        for name in ("central-a", "central-b"):
            cfg = write_central_config(
                tmp_path / f"{name}.yaml",
                broker_port=mosquitto.port,
                database_url=url,
                receiver_url=receiver.url("/hook"),
                instance_id=name,
            )
            centrals.append(CentralProcess(cfg, tmp_path / f"{name}.log").start())
        pub = Publisher(mosquitto.port)
        try:
            time.sleep(0.5)
            for k in range(pairs):
                lat, lon = 20 + k * 0.5, 110 + k * 0.5  # pairs are 70 km apart: separate incidents
                for side, (dlat, bearing, x) in enumerate([(0.03, 180.0, (0.45, 0.55)), (-0.03, 0.0, (0.45, 0.55))]):
                    pub.send(
                        alert_topic(f"edge{k}{side}", "c"),
                        alert_payload(
                            0,
                            edge=f"edge{k}{side}",
                            cam="c",
                            alert_id=f"alert-{k}-{side}-000",
                            lat=lat + dlat,
                            lon=lon,
                            bearing=bearing,
                            x=x,
                        ),
                        wait=False,
                    )
                if k == pairs // 2:
                    centrals[0].kill()  # one instance dies mid-burst; the other carries on
            wait_until(lambda: centrals[1].get("/api/v1/incidents")["total"] >= pairs // 2, 30, "the survivor works")
            centrals[0] = CentralProcess(centrals[0].config, tmp_path / "central-a2.log").start()
            wait_until(
                lambda: sum(1 for r in receiver.accepted() if json.loads(r.body)["msg_type"] == "Alert") >= pairs,
                60,
                "every incident notified",
            )
            time.sleep(3)
            incidents = centrals[1].get("/api/v1/incidents?limit=500")
            assert incidents["total"] == pairs, "an incident was split or lost"
            assert all(item["camera_count"] == 2 for item in incidents["items"])
            first = [json.loads(r.body) for r in receiver.accepted()]
            alert_ids = [n["incident"]["id"] for n in first if n["msg_type"] == "Alert"]
            assert sorted(alert_ids) == sorted(set(alert_ids)) and len(alert_ids) == pairs, "an Alert was duplicated"
            # a second camera arriving after group_wait is an Update with its own key, never a repeat
            keys = [r.key for r in receiver.accepted()]
            assert len(keys) == len(set(keys))
            # With both up, the shared subscription splits new alerts between them.
            before = [stored_by(c) for c in centrals]
            for k in range(40):
                pub.send(
                    alert_topic(f"late{k}", "c"),
                    alert_payload(0, edge=f"late{k}", cam="c", alert_id=f"alert-late-{k}", lat=-30 - k, lon=10),
                )
            wait_until(lambda: sum(stored_by(c) for c in centrals) - sum(before) >= 40, 30, "the late alerts")
            gains = [stored_by(c) - b for c, b in zip(centrals, before, strict=True)]
            assert all(g > 0 for g in gains), f"load not shared: {gains}"
        finally:
            pub.close()
            for c in centrals:
                c.stop()
        logs = (tmp_path / "central-a.log").read_text() + (tmp_path / "central-b.log").read_text()
        assert "subscribed" in logs


def _valid(doc: dict) -> tuple[Incoming, Alert]:
    raw = json.dumps(doc).encode()
    return Incoming(f"hazardwatch/v1/{doc['edge_id']}/alerts/{doc['camera_id']}", raw, 1, 0), Alert.model_validate(doc)


def test_two_instances_work_side_by_side_on_different_places_and_queue_on_the_same(tmp_path):
    """Correlation locks places, not hazards: while one instance holds a batch in one place, the other
    stores an alert of the same hazard 5 km away at once, and waits only for an alert that could merge."""
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    with temporary_database("postgres", tmp_path) as url:
        cfg = CentralConfig(
            broker=BrokerConfig(), database={"url": url}, correlation=CorrelationConfig(cross_camera_distance_km=1.0)
        )
        dbs = [Database(url, pool_size=2) for _ in range(2)]
        dbs[0].migrate()
        ingest = MqttIngest(cfg, dbs[1], CentralMetrics(), lambda n: None)
        lat, lon = 22.60, 114.00
        holding, release = threading.Event(), threading.Event()

        def busy_batch_here() -> None:  # instance A, in the middle of a long batch at `here`
            with dbs[0].tx() as tx:
                tx.lock_all(lock_keys(WATER, "ea", "c", lat, lon, 1.0))
                holding.set()
                release.wait(20)

        holder = threading.Thread(target=busy_batch_here)
        holder.start()
        try:
            assert holding.wait(10)
            started = time.monotonic()
            far = alert_payload(0, edge="eb", cam="c", alert_id="alert-far-1", lat=lat, lon=lon + 0.05, hazard=WATER)
            assert ingest.store([_valid(far)]) == 1  # 5 km east: another place, no wait
            assert time.monotonic() - started < 5.0
            near_done = threading.Event()
            near = alert_payload(0, edge="ec", cam="c", alert_id="alert-n-1", lat=lat + 3e-4, lon=lon, hazard=WATER)
            threading.Thread(target=lambda: (ingest.store([_valid(near)]), near_done.set())).start()
            assert not near_done.wait(1.0), "an alert 30 m from a batch in progress did not wait for it"
        finally:
            release.set()
            holder.join(10)
        assert near_done.wait(10), "the alert nearby was not stored once the other batch ended"
        with dbs[1].tx() as tx:
            assert tx.scalar("SELECT COUNT(*) FROM incidents") == 2
        for db in dbs:
            db.close()
