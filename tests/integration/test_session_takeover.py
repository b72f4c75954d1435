"""Session takeover (issue 17, point 4), on real Mosquitto with the shipped config and generated credentials.

A stolen edge password connects under central's client id with a persistent session, again and again,
while an honest edge sends 400 alerts. With the shipped `use_username_as_clientid` the broker names that
client after its user, so central keeps its connection and stores every alert. The same attack against the
config without that line does close central's connection: the test can tell the two apart.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hazardwatch.central.ingest.mqtt_ingest import default_client_id
from hazardwatch.harness.central_proc import CentralProcess, alert_payload, write_central_config
from hazardwatch.harness.edge_proc import wait_until
from hazardwatch.procs import free_port, mosquitto_binary, wait_port

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ALERTS = 400


def start_shipped_broker(tmp: Path, creds: Path, *, bind_ids: bool) -> tuple[subprocess.Popen, int, Path]:
    """docker/mosquitto/mosquitto.conf on a loopback port with the generated password file and ACL."""
    port = free_port()
    conf = (DOCKER / "mosquitto" / "mosquitto.conf").read_text()
    assert re.search(r"^use_username_as_clientid true$", conf, flags=re.M), "the shipped config binds ids"
    if not bind_ids:
        conf = re.sub(r"^use_username_as_clientid true$", "", conf, flags=re.M)
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.M)
    conf = conf.replace("/mosquitto/auth/", f"{creds / 'mosquitto'}/").replace("/mosquitto/data/", f"{tmp}/")
    log = tmp / "mosquitto.log"
    conf = conf.replace("log_dest stdout", f"log_dest file {log}") + ("user root\n" if os.geteuid() == 0 else "")
    (tmp / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(tmp / "mosquitto.conf")], stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port, timeout=10)
    return proc, port, log


def client(port: int, user: str, password: str, client_id: str, *, persistent: bool = False) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    props = None
    if persistent:
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 24 * 3600
    c.connect("127.0.0.1", port, clean_start=not persistent, properties=props)
    return c


def stored_alerts(central: CentralProcess) -> float:
    with urllib.request.urlopen(central.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(r'^hazardwatch_central_messages_total\{kind="alert",result="stored"\} (\S+)$', text, flags=re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("bind_ids", [True, False], ids=["shipped", "without-binding"])
def test_a_stolen_edge_password_cannot_take_over_centrals_session(tmp_path: Path, bind_ids: bool) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not found (run .ci/install-system.sh)")
    creds = tmp_path / "generated"
    generate = runpy.run_path(str(DOCKER / "mosquitto" / "gen_credentials.py"))["generate"]
    generate(creds, ["e1", "e2"], ["central"])
    pw = {p.name.removesuffix("-mqtt.pass"): p.read_text().strip() for p in (creds / "secrets").glob("*-mqtt.pass")}
    broker, port, broker_log = start_shipped_broker(tmp_path, creds, bind_ids=bind_ids)
    broker_cfg = {"host": "127.0.0.1", "port": port, "username": "central", "password": {"value": pw["central"]}}
    cfg = write_central_config(
        tmp_path / "central.yaml", broker_port=port, database_url=f"sqlite:///{tmp_path / 'c.db'}", broker=broker_cfg
    )
    central_id = default_client_id("central-1", pw["central"])  # assume it leaked: the broker must still hold
    stop = threading.Event()
    intruder_got: list[str] = []
    try:
        with CentralProcess(cfg, tmp_path / "central.log") as central:
            wait_until(lambda: central.get("/healthz", token=None)["mqtt"] == "subscribed", 15, "central subscribed")

            def intrude() -> None:
                while not stop.is_set():
                    try:
                        c = client(port, "e2", pw["e2"], central_id, persistent=True)
                    except OSError:
                        continue
                    c.on_message = lambda _c, _u, m: intruder_got.append(m.topic)
                    c.loop_start()
                    c.subscribe("hazardwatch/v1/#", qos=1)
                    stop.wait(0.15)
                    c.disconnect()
                    c.loop_stop()

            edge = client(port, "e1", pw["e1"], "hazardwatch-edge-e1")
            edge.loop_start()
            intruder = threading.Thread(target=intrude, daemon=True)
            intruder.start()
            now = time.time()
            infos = []
            for seq in range(1, ALERTS + 1):
                doc = alert_payload(seq, alert_id=f"alert-takeover-{seq:05d}", at=now, x=(0.4, 0.5))
                infos.append(edge.publish("hazardwatch/v1/e1/alerts/north", json.dumps(doc), qos=1))
                time.sleep(0.005)
            for info in infos:
                info.wait_for_publish(10)
            stop.set()
            intruder.join(10)
            edge.disconnect()
            edge.loop_stop()
            kicked = "central disconnected from broker" in central.log()
            if bind_ids:
                wait_until(lambda: stored_alerts(central) >= ALERTS, 30, f"{ALERTS} alerts stored")
                time.sleep(0.5)
                assert stored_alerts(central) == ALERTS
                assert not kicked, central.log()[-2000:]
                assert intruder_got == []
                assert "as e2" in broker_log.read_text()  # the broker named the intruder after its user
            else:
                assert kicked, "without the binding the intruder closes central's connection"
    finally:
        stop.set()
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)
