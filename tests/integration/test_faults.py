"""Typhoon-night faults, each on real parts, each printing its figure.

Beyond what test_edge_e2e / test_central_e2e already cover (one broker outage, one edge kill -9, one
central kill -9, receiver down then up): central killed repeatedly in bursts, a receiver that flaps and
then hangs past the client timeout, a full disk under the edge's outbox (a tmpfs the test mounts), a
network partition between edge and broker (network namespaces the test creates), and a poison payload
that must not stop central's ingest.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from support.disk import small_tmpfs

from hazardwatch.harness.central_proc import (
    ADMIN,
    CentralProcess,
    Publisher,
    alert_payload,
    alert_topic,
    write_central_config,
)
from hazardwatch.harness.edge_proc import EdgeProcess, MqttWatcher, wait_until, write_edge_config
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.harness.receiver import Receiver
from hazardwatch.harness.toy_models import red_patch_manifest
from hazardwatch.procs import free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

FAST_CONFIRM = {"window": 2, "min_votes": 2, "threshold": 0.5, "end_after_s": 1.2}


def scene(folder: Path, patched: int = 3, clean: int = 3) -> Path:
    """Synthetic frames: the first `patched` of each cycle carry a red patch, so alerts start and end."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(patched + clean):
        img = np.full((240, 320, 3), 80 + 10 * k, np.uint8)
        img[:, :, 1] = np.linspace(40, 160, 320, dtype=np.uint8)[None, :]
        if k < patched:
            img[90:150, 140:200] = (0, 0, 255)
        cv2.imwrite(str(folder / f"{k:03d}.jpg"), img)
    return folder


def notes(receiver: Receiver) -> list[dict]:
    return [json.loads(r.body) for r in receiver.accepted()]


def assert_repeats_are_identical(receiver: Receiver) -> None:
    """At least once is allowed, but a repeat must carry the same key and the same bytes."""
    by_key: dict[str, bytes] = {}
    for r in receiver.accepted():
        assert by_key.setdefault(r.key, r.body) == r.body, f"key {r.key} delivered with different bodies"


# -- central -----------------------------------------------------------------------------------------------
def test_central_killed_repeatedly_mid_burst_loses_and_duplicates_nothing(tmp_path, mosquitto):
    cameras, per_camera, kills = 20, 15, 3
    with Receiver(secret="s3cret") as receiver:
        cfg = write_central_config(
            tmp_path / "central.yaml",
            broker_port=mosquitto.port,
            database_url=f"sqlite:///{tmp_path / 'central.db'}",
            receiver_url=receiver.url("/hook"),
        )
        central = CentralProcess(cfg, tmp_path / "central-0.log").start()
        pub = Publisher(mosquitto.port)
        events = [(k % cameras, k // cameras) for k in range(cameras * per_camera)]
        kill_at = {len(events) * (i + 1) // (kills + 1) for i in range(kills)}
        downtime = 0.0
        try:
            for n, (cam, seq) in enumerate(events):
                pub.send(
                    alert_topic(f"edge{cam}", "c"),
                    alert_payload(
                        seq, edge=f"edge{cam}", cam="c", alert_id=f"alert-{cam}-00000",
                        state="new" if seq == 0 else "update", lat=20 + cam, lon=110 + cam, score=0.5 + seq * 0.03,
                    ),
                    wait=n % 25 == 24,
                )
                if n in kill_at:
                    central.kill()  # mid-burst: messages in flight, a batch possibly half-stored
                    down = time.monotonic()
                    time.sleep(0.3)  # the burst goes on while it is down
                    central = CentralProcess(cfg, tmp_path / f"central-{n}.log").start()
                    downtime += time.monotonic() - down
            wait_until(
                lambda: central.get("/api/v1/incidents")["total"] == cameras
                and len({n["incident"]["id"] for n in notes(receiver) if n["msg_type"] == "Alert"}) == cameras,
                60,
                "every incident stored and notified",
            )
            time.sleep(3)  # group_interval: late Updates go out
            incidents = central.get("/api/v1/incidents?limit=500")
            assert incidents["total"] == cameras, "an incident was split or lost"
            stored = 0
            for item in incidents["items"]:
                timeline = central.get(f"/api/v1/incidents/{item['id']}")["timeline"]
                seqs = sorted(e["detail"]["seq"] for e in timeline if e["kind"] == "alert")
                assert seqs == list(range(per_camera)), (item["id"], seqs)  # each event once, none lost
                stored += len(seqs)
            alert_keys = {n["idempotency_key"] for n in notes(receiver) if n["msg_type"] == "Alert"}
            assert len(alert_keys) == cameras, "an incident was alerted twice under different keys"
            assert_repeats_are_identical(receiver)
            repeats = len(receiver.accepted()) - len({r.key for r in receiver.accepted()})
        finally:
            pub.close()
            central.stop()
        print(f"{kills} kill -9 during {len(events)} events: {stored} stored once, {cameras} incidents, "
              f"{repeats} same-key repeats, {downtime:.1f} s down in total")


def test_poison_payload_does_not_stop_ingest(tmp_path, mosquitto):
    """An integer over Python's 4300-digit limit made json.loads raise a bare ValueError, which escaped
    the contract parser and killed central's ingest thread for good (the message was never acknowledged,
    so it came back after every restart)."""
    cfg = write_central_config(
        tmp_path / "central.yaml", broker_port=mosquitto.port, database_url=f"sqlite:///{tmp_path / 'c.db'}"
    )
    with CentralProcess(cfg, tmp_path / "central.log") as central:
        pub = Publisher(mosquitto.port)
        try:
            good = alert_payload(0)
            poison = json.dumps({**good, "seq": 1}).replace('"seq": 1', '"seq": ' + "9" * 5000).encode()
            pub.send(alert_topic(), poison)
            pub.send(alert_topic(), json.dumps({**good, "seq": 2**64}).encode())  # over BIGINT
            pub.send(alert_topic(), json.dumps({**good, "sent_at": float("nan")}).encode())
            pub.send(alert_topic(), good)
            wait_until(lambda: central.get("/api/v1/incidents")["total"] == 1, 15, "the good alert after the poison")
            metrics = central.request("GET", "/metrics")[1]
            assert 'hazardwatch_central_rejected_messages_total{topic_kind="alert"} 3.0' in metrics
        finally:
            pub.close()


# -- receiver ----------------------------------------------------------------------------------------------
def test_receiver_flapping_then_hanging_gets_everything_and_dead_letters_show(tmp_path, mosquitto):
    incidents_n = 8
    with Receiver(secret="s3cret", hang_s=4.0) as receiver:
        cfg = write_central_config(
            tmp_path / "central.yaml",
            broker_port=mosquitto.port,
            database_url=f"sqlite:///{tmp_path / 'central.db'}",
            receiver_url=receiver.url("/hook"),
            timers={"group_wait_s": 0, "group_interval_s": 1, "repeat_interval_s": 3600},
        )
        doc = yaml.safe_load(cfg.read_text())
        doc["receivers"][0].update(timeout_s=1, backoff={"initial_s": 0.2, "max_s": 0.8, "jitter": 0.1})
        cfg.write_text(yaml.safe_dump(doc))
        central = CentralProcess(cfg, tmp_path / "central.log").start()
        pub = Publisher(mosquitto.port)
        stop_flapping = threading.Event()

        def flap() -> None:
            while not stop_flapping.is_set():
                receiver.stop()
                stop_flapping.wait(0.4)
                receiver.start()
                stop_flapping.wait(0.3)

        flapper = threading.Thread(target=flap, daemon=True)
        try:
            flapper.start()
            for k in range(incidents_n):
                pub.send(
                    alert_topic(f"e{k}", "c"),
                    alert_payload(0, edge=f"e{k}", cam="c", alert_id=f"alert-{k}-flap", lat=-40 + 5 * k, lon=k),
                )
                time.sleep(0.3)
            time.sleep(2)
            stop_flapping.set()
            flapper.join(5)
            receiver.start()
            # Slow: every answer comes after the client's 1 s timeout, so each attempt times out.
            receiver.set_mode("timeout")
            for item in central.get("/api/v1/incidents?limit=100")["items"][:3]:
                central.request("POST", f"/api/v1/incidents/{item['id']}/acknowledge", {"note": "on it"})
            wait_until(
                lambda: sum(1 for r in receiver.requests if r.mode == "timeout") >= 3, 20, "attempts timing out"
            )
            pending = central.get("/api/v1/deliveries")["counts"]["pending"]
            assert pending >= 3, "timed-out deliveries must stay pending"
            receiver.set_mode("accept")
            started = time.monotonic()
            wait_until(lambda: central.get("/api/v1/deliveries")["counts"]["pending"] == 0, 60, "the queue drained")
            drained_s = time.monotonic() - started
            got = notes(receiver)
            alerted = {n["incident"]["id"] for n in got if n["msg_type"] == "Alert"}
            assert len(alerted) == incidents_n, f"only {len(alerted)} of {incidents_n} incidents reached the receiver"
            assert sum(1 for n in got if n["incident"]["acknowledged_by"] == "amy") >= 3
            assert all(r.signature_ok for r in receiver.requests)
            assert_repeats_are_identical(receiver)
            counts = central.get("/api/v1/deliveries")["counts"]
            assert counts.get("dead", 0) == 0
            refused_connections = sum(
                1 for d in central.get("/api/v1/deliveries?limit=1000")["items"] if d["attempts"] > 1
            )
            # A receiver that refuses a notification for good: a dead letter, visible and re-queueable.
            receiver.set_mode("accept", script=["reject"])
            pub.send(alert_topic("e99", "c"), alert_payload(0, edge="e99", cam="c", alert_id="alert-99-dead", lat=60))
            dead = wait_until(
                lambda: central.get("/api/v1/deliveries?state=dead", token=ADMIN)["items"], 20, "a dead letter"
            )
            assert dead[0]["last_error"].startswith("HTTP 400") or "400" in dead[0]["last_error"]
            status, _ = central.request("POST", f"/api/v1/deliveries/{dead[0]['id']}/retry", {}, token=ADMIN)
            assert status == 200
            wait_until(lambda: any(n["incident"]["cameras"][0]["edge_id"] == "e99" for n in notes(receiver)), 20,
                       "the re-queued dead letter delivered")
            assert central.get("/api/v1/deliveries")["counts"].get("dead", 0) == 0
        finally:
            stop_flapping.set()
            pub.close()
            central.stop()
        print(f"{incidents_n} incidents through a flapping then hanging receiver: queue drained "
              f"{drained_s:.1f} s after recovery, {refused_connections} deliveries needed retries")


# -- edge: disk full ---------------------------------------------------------------------------------------
def fill(folder: Path) -> Path:
    """Write until ENOSPC; return the filler file."""
    filler = folder / "filler.bin"
    chunk = b"\0" * 4096
    with contextlib.suppress(OSError), open(filler, "wb") as f:
        while True:
            f.write(chunk)
            f.flush()
    with contextlib.suppress(OSError):
        os.sync()
    return filler


def edge_health(edge: EdgeProcess) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(edge.url.split("//")[1], timeout=5)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_edge_disk_full_degrades_clearly_and_keeps_accepted_alerts(tmp_path):
    port = free_port()
    manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
    cams = [{"id": "cam-1", "source": str(scene(tmp_path / "scene")), "hazards": {"fire": {}}}]
    # The watcher's persistent session exists before the edge starts, so whatever the edge drains the
    # moment the broker is back is queued for it (no race between the edge and the watcher's SUBACK).
    broker = MosquittoBroker(port=port, workdir=tmp_path / "mq").start()
    MqttWatcher(port).start().stop()
    broker.stop()
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        config = write_edge_config(
            tmp_path / "edge.yaml", broker_port=port, cameras=cams, manifest=manifest, confirm=FAST_CONFIRM,
            outbox={"path": str(disk / "outbox.db")},
        )
        with EdgeProcess(config, tmp_path / "edge.log") as edge:
            wait_until(lambda: edge_health(edge)[1]["outbox_depth"] >= 3, 40, "alerts waiting for the broker")
            filler = fill(disk)
            _, body = wait_until(
                lambda: (h := edge_health(edge))[0] == 503 and h, 40, "the edge to report its full disk"
            )
            assert body["status"] == "degraded" and "full" in body["problems"][0], body
            metrics = edge.get_text("/metrics")
            assert "hazardwatch_edge_outbox_write_errors_total" in metrics
            kept_depth = body["outbox_depth"]
            time.sleep(2)
            assert edge_health(edge)[1]["outbox_depth"] >= kept_depth, "accepted alerts were lost while full"
            assert edge.proc.poll() is None, "the edge died of a full disk"
            filler.unlink()  # the field engineer frees space
            wait_until(lambda: edge_health(edge)[0] == 200, 30, "the edge back to ok once space is free")
            # The broker comes up: everything accepted is delivered in sequence, no gap from the full period.
            with broker:
                wait_until(lambda: edge_health(edge)[1]["outbox_depth"] == 0, 30, "outbox drained")
                watcher = MqttWatcher(broker.port).start()
                time.sleep(1)
                seqs = [m.payload["seq"] for m in watcher.of_kind("alert")]
                watcher.stop()
        assert seqs == list(range(len(seqs))) and len(seqs) >= kept_depth - 1, seqs
        log = (tmp_path / "edge.log").read_text()
        assert "could not be stored" in log
    print(f"disk full: /healthz 503 degraded, {kept_depth} queued messages kept, {len(seqs)} alerts delivered in order")


# -- edge: network partition -------------------------------------------------------------------------------
class Netns:
    """A network namespace joined to the host by a veth pair: host 10.231.N.1 (+ .3), namespace .2."""

    def __init__(self) -> None:
        tag = f"{random.randrange(16**4):04x}"
        self.name = f"hw-part-{tag}"
        self.host_if, self.ns_if = f"hwp{tag}a", f"hwp{tag}b"
        net = random.randrange(2, 250)
        self.host_ip, self.ns_ip, self.probe_ip = f"10.231.{net}.1", f"10.231.{net}.2", f"10.231.{net}.3"

    def create(self) -> Netns:
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
            ["ip", "link", "set", self.ns_if, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_ip}/29", "dev", self.host_if],
            ["ip", "addr", "add", f"{self.probe_ip}/29", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            ["ip", "-n", self.name, "addr", "add", f"{self.ns_ip}/29", "dev", self.ns_if],
            ["ip", "-n", self.name, "link", "set", self.ns_if, "up"],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
        ]
        for step in steps:
            run = subprocess.run(step, capture_output=True)
            if run.returncode != 0:
                self.delete()
                pytest.skip(f"cannot build a network namespace here ({' '.join(step)}: "
                            f"{run.stderr.decode().strip()}); needs root and CAP_NET_ADMIN")
        return self

    def partition(self) -> None:
        """Silently drop everything the edge sends to the broker (no RST, no ICMP): a dead link."""
        subprocess.run(["ip", "-n", self.name, "route", "add", "blackhole", f"{self.host_ip}/32"], check=True)

    def heal(self) -> None:
        subprocess.run(["ip", "-n", self.name, "route", "del", "blackhole", f"{self.host_ip}/32"], check=True)

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class NetnsEdge(EdgeProcess):
    """`hazardwatch edge` inside the namespace; health is read from the probe address (not the broker's)."""

    def __init__(self, config: Path, log_path: Path, ns: Netns) -> None:
        super().__init__(config, log_path)
        self.ns = ns

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns.name, *super().command()]

    def health(self) -> dict:
        host, port = self.url.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=3, source_address=(self.ns.probe_ip, 0))
        try:
            conn.request("GET", "/healthz")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()


def test_network_partition_between_edge_and_broker(tmp_path):
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) not installed: cannot build network namespaces")
    ns = Netns().create()
    try:
        broker_port = free_port()
        manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
        cams = [{"id": "cam-1", "source": str(scene(tmp_path / "scene")), "hazards": {"fire": {}}}]
        with MosquittoBroker(workdir=tmp_path / "mq", extra_config=f"listener {broker_port} {ns.host_ip}") as broker:
            config = write_edge_config(
                tmp_path / "edge.yaml", broker_port=broker_port, cameras=cams, manifest=manifest,
                confirm=FAST_CONFIRM, http={"host": ns.ns_ip, "port": 0},
            )
            doc = yaml.safe_load(config.read_text())
            doc["broker"].update(host=ns.host_ip, keepalive_s=5)
            config.write_text(yaml.safe_dump(doc, sort_keys=False))
            watcher = MqttWatcher(broker.port, client_id="partition-watcher").start()
            with NetnsEdge(config, tmp_path / "edge.log", ns) as edge:
                wait_until(lambda: len(watcher.of_kind("alert")) >= 2, 40, "alerts before the partition")
                ns.partition()
                cut = time.monotonic()
                wait_until(lambda: not edge.health()["mqtt_connected"], 30, "the edge to notice the dead link")
                noticed_s = time.monotonic() - cut
                wait_until(lambda: edge.health()["outbox_depth"] >= 4, 40, "alerts piling up during the partition")
                queued = edge.health()["outbox_depth"]
                during = len(watcher.of_kind("alert"))
                ns.heal()
                healed = time.monotonic()
                wait_until(lambda: edge.health()["outbox_depth"] == 0 and edge.health()["mqtt_connected"], 40,
                           "the outbox drained after the partition")
                drained_s = time.monotonic() - healed
                assert edge.stop() == 0
            produced = sqlite3.connect(tmp_path / "outbox.db").execute(
                "SELECT value FROM meta WHERE key = 'next_alert_seq'").fetchone()[0]
            watcher.wait_for(lambda w: len({m.payload["seq"] for m in w.of_kind("alert")}) >= produced, 10,
                             f"all {produced} alerts")
            time.sleep(0.5)
            got = [(m.payload["seq"], m.payload["alert_id"], m.payload["state"]) for m in watcher.of_kind("alert")]
            watcher.stop()
        first_seen: list[int] = []
        for seq, _, _ in got:
            if seq not in first_seen:
                first_seen.append(seq)
        assert first_seen == list(range(produced)), f"lost or reordered: {first_seen}"
        assert len(set(got)) == produced, "a sequence number carried two different events"
        duplicates = len(got) - produced
        assert during < produced
    finally:
        ns.delete()
    print(f"partition: noticed after {noticed_s:.1f} s, {queued} messages queued, drained {drained_s:.1f} s after "
          f"healing; {produced} alerts delivered in order ({duplicates} QoS 1 redeliveries of unacknowledged ones)")
