"""MQTT security against a real Mosquitto that the test configures: TLS with a CA and certificates it
generates, per-edge passwords (mosquitto_passwd) and an ACL.

What is proved, each with real clients: anonymous, wrong-password, plaintext and unknown-CA clients are
refused; an edge publishes only on its own topics and reads only its own commands; only central
publishes commands; and a real edge process and a real central process do their work over TLS with
their own credentials (an alert becomes an incident, a command changes the edge's patrol).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hazardwatch.harness.central_proc import CentralProcess, alert_payload, alert_topic, write_central_config
from hazardwatch.harness.edge_proc import EdgeProcess, wait_until, write_edge_config
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.harness.toy_models import red_patch_manifest
from hazardwatch.procs import free_port, mosquitto_binary

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

EDGES = ("edge-a", "edge-b")
PASSWORDS = {"edge-a": "pw-edge-a-7Qx", "edge-b": "pw-edge-b-9Rz", "central": "pw-central-3Kd"}
ACL = """\
# central reads everything of v1 and is the only one that writes commands
user central
topic read hazardwatch/v1/#
topic write hazardwatch/v1/+/commands

# an edge (username = edge id) writes its own topics, reads its own commands, nothing else
pattern write hazardwatch/v1/%u/availability
pattern write hazardwatch/v1/%u/heartbeat
pattern write hazardwatch/v1/%u/alerts/+
pattern write hazardwatch/v1/%u/cameras/+/status
pattern read hazardwatch/v1/%u/commands
"""


# -- a private PKI ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]  # name -> (cert, key)
    rogue: tuple[Path, Path]  # a client certificate from another CA


def _key_and_name(common_name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    return ec.generate_private_key(ec.SECP256R1()), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, key, cert) -> None:
    from cryptography.hazmat.primitives import serialization

    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _ca(folder: Path, name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key, subject = _key_and_name(name)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    _write(folder / name, key, cert)
    return key, cert


def _leaf(folder: Path, name: str, ca_key, ca_cert, *, server: bool) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, subject = _key_and_name(name)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    _write(folder / name, key, builder.sign(ca_key, hashes.SHA256()))
    return folder / f"{name}.pem", folder / f"{name}.key"


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, one client certificate per identity, and a rogue."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca(folder, "hazardwatch-test-ca")
    server = _leaf(folder, "broker", ca_key, ca_cert, server=True)
    clients = {name: _leaf(folder, name, ca_key, ca_cert, server=False) for name in PASSWORDS}
    rogue_key, rogue_cert = _ca(folder, "rogue-ca")
    rogue = _leaf(folder, "rogue-client", rogue_key, rogue_cert, server=False)
    return Pki(folder / "hazardwatch-test-ca.pem", server[0], server[1], clients, rogue)


@dataclass(frozen=True)
class SecureBroker:
    broker: MosquittoBroker
    pki: Pki
    mtls_port: int  # TLS, client certificate required, plus password
    tls_port: int  # TLS (server-authenticated only), password required


@pytest.fixture
def secure_broker(tmp_path: Path):
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not found (run .ci/install-system.sh)")
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd not found (Debian package mosquitto)")
    pki = make_pki(tmp_path / "pki")
    pwfile = tmp_path / "passwords"
    pwfile.touch()
    for user, password in PASSWORDS.items():
        subprocess.run([passwd, "-b", str(pwfile), user, password], check=True, capture_output=True)
    assert "pw-edge" not in pwfile.read_text(), "mosquitto_passwd must store hashes, not passwords"
    (tmp_path / "acl").write_text(ACL)
    mtls, tls = free_port(), free_port()
    tls_common = [f"cafile {pki.ca}", f"certfile {pki.server_cert}", f"keyfile {pki.server_key}", "tls_version tlsv1.2"]
    extra = "\n".join(
        [
            "allow_anonymous false",
            f"password_file {pwfile}",
            f"acl_file {tmp_path / 'acl'}",
            f"listener {mtls} 127.0.0.1",
            *tls_common,
            "require_certificate true",
            f"listener {tls} 127.0.0.1",
            *tls_common,
        ]
    )
    broker = MosquittoBroker(workdir=tmp_path / "mq", extra_config=extra)
    # The base config's plain listener stays for the harness only; it also refuses anonymous clients.
    broker.start()
    try:
        yield SecureBroker(broker, pki, mtls, tls)
    finally:
        broker.close()


# -- real clients ----------------------------------------------------------------------------------------
@dataclass
class Client:
    """A paho client that records its CONNACK, SUBACK, PUBACK reason codes and messages."""

    name: str
    client: mqtt.Client
    connack: list[str]
    subacks: list[list[str]]
    messages: list[tuple[str, bytes]]
    lock: threading.Lock

    def publish(self, topic: str, payload: bytes | str, *, timeout: float = 5.0) -> str:
        """QoS 1 publish; returns the broker's PUBACK reason ('Success' or 'Not authorized')."""
        reasons: dict[int, str] = {}
        done = threading.Event()

        def on_publish(client, userdata, mid, reason, props) -> None:
            reasons[mid] = str(reason)
            done.set()

        self.client.on_publish = on_publish
        info = self.client.publish(topic, payload, qos=1)
        assert done.wait(timeout), f"{self.name}: no PUBACK for {topic}"
        return reasons[info.mid]

    def subscribe(self, topic: str, timeout: float = 5.0) -> list[str]:
        before = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        wait_until(lambda: len(self.subacks) > before, timeout, f"SUBACK for {topic}")
        return self.subacks[-1]

    def received(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    sb: SecureBroker,
    name: str,
    *,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    cert: tuple[Path, Path] | None = None,
    tls: bool = True,
    timeout: float = 5.0,
) -> Client:
    """Connect over TLS (MQTT 5); the returned client's `connack` says what the broker answered."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{name}-{time.monotonic_ns()}",
                    protocol=mqtt.MQTTv5)
    box = Client(name, c, [], [], [], threading.Lock())
    if user is not None:
        c.username_pw_set(user, password)
    if tls:
        certfile, keyfile = (str(cert[0]), str(cert[1])) if cert else (None, None)
        c.tls_set(ca_certs=str(sb.pki.ca), certfile=certfile, keyfile=keyfile)
    c.on_connect = lambda client, userdata, flags, reason, props: box.connack.append(str(reason))
    c.on_subscribe = lambda client, userdata, mid, reasons, props: box.subacks.append([str(r) for r in reasons])

    def on_message(client, userdata, msg) -> None:
        with box.lock:
            box.messages.append((msg.topic, msg.payload))

    c.on_message = on_message
    c.reconnect_delay_set(30, 30)  # a refused client must not hammer the broker during the test
    try:
        c.connect("127.0.0.1", port or sb.tls_port, keepalive=10)
    except (ssl.SSLError, OSError) as exc:
        box.connack.append(f"TLS/socket error: {exc}")
        return box
    c.loop_start()
    deadline = time.monotonic() + timeout
    while not box.connack and time.monotonic() < deadline:
        time.sleep(0.05)
    if not box.connack:
        box.connack.append("no CONNACK")
    return box


def edge_client(sb: SecureBroker, edge: str, **kw: object) -> Client:
    return connect(sb, edge, user=edge, password=PASSWORDS[edge], port=sb.mtls_port, cert=sb.pki.clients[edge], **kw)


def central_client(sb: SecureBroker) -> Client:
    return connect(sb, "central", user="central", password=PASSWORDS["central"], port=sb.mtls_port,
                   cert=sb.pki.clients["central"])


def command(edge: str, command_id: str = "cmd-1") -> bytes:
    return json.dumps(
        {"schema_version": 1, "kind": "set_risk", "edge_id": edge, "sent_at": time.time(), "command_id": command_id,
         "hazard": "fire", "level": "high", "cameras": None, "until": time.time() + 600, "reason": "typhoon"}
    ).encode()


# -- tests -----------------------------------------------------------------------------------------------
def test_who_may_connect(secure_broker):
    sb = secure_broker
    ok = edge_client(sb, "edge-a")
    assert ok.connack == ["Success"]
    ok.close()
    refused = {
        "anonymous over TLS": connect(sb, "anon"),
        "anonymous on the mTLS port with a valid certificate": connect(
            sb, "anon-cert", port=sb.mtls_port, cert=sb.pki.clients["edge-a"]
        ),
        "wrong password": connect(sb, "wrongpw", user="edge-a", password="guess"),
        "another edge's password": connect(sb, "swap", user="edge-a", password=PASSWORDS["edge-b"]),
        "unknown user": connect(sb, "nobody", user="edge-z", password="pw-edge-a-7Qx"),
    }
    for what, c in refused.items():
        assert c.connack and c.connack[0] != "Success", f"{what} was let in: {c.connack}"
        c.close()
    # No client certificate, or one from a CA the broker does not trust: the TLS handshake fails.
    for what, cert in {"no client certificate": None, "a rogue CA's certificate": sb.pki.rogue}.items():
        c = connect(sb, "nocert", port=sb.mtls_port, user="edge-a", password=PASSWORDS["edge-a"], cert=cert,
                    timeout=2)
        assert c.connack[0] != "Success", f"{what} was let in"
        c.close()
    # Plain MQTT to a TLS port: no CONNACK at all.
    c = connect(sb, "plain", user="edge-a", password=PASSWORDS["edge-a"], tls=False, timeout=2)
    assert c.connack[0] != "Success"
    c.close()
    # A client that does not trust the broker's certificate refuses it (no MITM with a self-made cert).
    ctx = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", sb.tls_port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_acl_edges_publish_only_their_own_topics_and_read_only_their_own_commands(secure_broker):
    sb = secure_broker
    central = central_client(sb)
    a, b = edge_client(sb, "edge-a"), edge_client(sb, "edge-b")
    try:
        assert central.connack == a.connack == b.connack == ["Success"]
        assert central.subscribe("hazardwatch/v1/#") == ["Granted QoS 1"]
        assert a.subscribe("hazardwatch/v1/edge-a/commands") == ["Granted QoS 1"]
        assert b.subscribe("hazardwatch/v1/edge-b/commands") == ["Granted QoS 1"]
        # Mosquitto grants foreign or wider subscriptions but checks read access per message: the
        # assertions on what edge-a receives below are what proves it cannot listen in.
        a.subscribe("hazardwatch/v1/edge-b/commands")
        a.subscribe("hazardwatch/v1/#")

        own = alert_payload(0, edge="edge-a", cam="c1")
        assert a.publish(alert_topic("edge-a", "c1"), json.dumps(own)) == "Success"
        # Speaking for another edge, or giving orders: refused with MQTT 5 reason 0x87.
        forged = alert_payload(0, edge="edge-b", cam="c1")
        assert a.publish(alert_topic("edge-b", "c1"), json.dumps(forged)) == "Not authorized"
        assert a.publish("hazardwatch/v1/edge-b/cameras/c1/status", b"{}") == "Not authorized"
        assert a.publish("hazardwatch/v1/edge-a/commands", command("edge-a")) == "Not authorized"
        assert a.publish("hazardwatch/v1/edge-b/commands", command("edge-b")) == "Not authorized"
        assert a.publish("hazardwatch/v2/edge-a/alerts/c1", b"{}") == "Not authorized"
        assert a.publish("$SYS/broker/fake", b"x") == "Not authorized"

        # Only central gives orders, and each edge hears only its own.
        assert central.publish("hazardwatch/v1/edge-a/commands", command("edge-a", "for-a")) == "Success"
        assert central.publish("hazardwatch/v1/edge-b/commands", command("edge-b", "for-b")) == "Success"
        wait_until(lambda: len(a.received()) >= 1 and len(b.received()) >= 1, 5, "commands delivered")
        time.sleep(0.5)
        a_topics = {t for t, _ in a.received()}
        assert a_topics == {"hazardwatch/v1/edge-a/commands"}, a_topics  # nor edge-b's alerts or commands
        assert {json.loads(p)["command_id"] for t, p in b.received()} == {"for-b"}
        # central saw edge-a's own alert and nothing forged
        seen = [(t, json.loads(p)) for t, p in central.received() if "/alerts/" in t]
        assert [(t, p["edge_id"]) for t, p in seen] == [(alert_topic("edge-a", "c1"), "edge-a")]
        # central itself may not impersonate an edge
        assert central.publish(alert_topic("edge-a", "c1"), json.dumps(own)) == "Not authorized"
    finally:
        for c in (central, a, b):
            c.close()
    log = sb.broker.log_text()
    assert "Denied PUBLISH" in log


def _scene(folder: Path, red: bool) -> Path:
    """Synthetic frames (no shared data needed): a grey scene, with a red patch when `red`."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(3):
        img = np.full((240, 320, 3), 90 + 20 * k, np.uint8)
        img[:, :, 1] = np.linspace(40, 160, 320, dtype=np.uint8)[None, :]
        if red:
            img[90:150, 140:200] = (0, 0, 255)
        cv2.imwrite(str(folder / f"{k:03d}.jpg"), img)
    return folder


def test_real_edge_and_central_work_over_tls_with_their_credentials(secure_broker, tmp_path):
    sb = secure_broker
    pki = sb.pki
    manifest = red_patch_manifest(tmp_path / "model", name="red-patch", hazard="fire")
    (tmp_path / "edge-a.secret").write_text(PASSWORDS["edge-a"] + "\n")
    tls_edge = {"ca_file": str(pki.ca), "cert_file": str(pki.clients["edge-a"][0]),
                "key_file": str(pki.clients["edge-a"][1])}
    cams = [{"id": "cam-1", "source": str(_scene(tmp_path / "scene", red=True)), "hazards": {"fire": {"interval_s": 2}},
             "location": {"lat": 22.5, "lon": 114.0}}]
    edge_cfg = write_edge_config(
        tmp_path / "edge.yaml",
        broker_port=sb.mtls_port,
        cameras=cams,
        manifest=manifest,
        edge_id="edge-a",
        confirm={"window": 2, "min_votes": 2, "threshold": 0.5, "end_after_s": 30},
    )
    import yaml

    doc = yaml.safe_load(edge_cfg.read_text())
    doc["broker"].update(username="edge-a", password={"file": str(tmp_path / "edge-a.secret")}, tls=tls_edge)
    edge_cfg.write_text(yaml.safe_dump(doc, sort_keys=False))

    central_cfg = write_central_config(
        tmp_path / "central.yaml", broker_port=sb.mtls_port, database_url=f"sqlite:///{tmp_path / 'c.db'}"
    )
    doc = yaml.safe_load(central_cfg.read_text())
    doc["broker"].update(
        username="central",
        password={"value": PASSWORDS["central"]},
        tls={"ca_file": str(pki.ca), "cert_file": str(pki.clients["central"][0]),
             "key_file": str(pki.clients["central"][1])},
    )
    central_cfg.write_text(yaml.safe_dump(doc, sort_keys=False))

    central = CentralProcess(central_cfg, tmp_path / "central.log").start()
    try:
        assert central.get("/healthz", token=None)["mqtt"] == "subscribed"
        with EdgeProcess(edge_cfg, tmp_path / "edge.log") as edge:
            wait_until(lambda: edge.get_json("/healthz")["mqtt_connected"], 20, "the edge connected over TLS")
            incident = wait_until(
                lambda: (items := central.get("/api/v1/incidents")["items"]) and items[0], 40, "an incident"
            )
            detail = central.get(f"/api/v1/incidents/{incident['id']}")
            assert detail["hazard"] == "fire" and detail["cameras"][0]["edge_id"] == "edge-a"
            wait_until(lambda: [e for e in central.get("/api/v1/edges")["items"] if e["edge_id"] == "edge-a"], 20,
                       "edge-a's availability and heartbeat at central")
            # Central's identity gives an order; the edge applies it.
            boss = central_client(sb)
            try:
                assert boss.publish("hazardwatch/v1/edge-a/commands", command("edge-a")) == "Success"
            finally:
                boss.close()
            wait_until(lambda: edge.camera("cam-1")["hazards"]["fire"]["risk"] == "high", 10, "the command applied")
            # Another edge cannot even deliver an order to it.
            impostor = edge_client(sb, "edge-b")
            try:
                reason = impostor.publish("hazardwatch/v1/edge-a/commands", command("edge-a", "evil"))
                assert reason == "Not authorized"
            finally:
                impostor.close()
            assert 'hazardwatch_edge_commands_total{result="applied"} 1.0' in edge.get_text("/metrics")
            assert edge.get_json("/healthz")["status"] == "ok"
    finally:
        central.stop()
    for log in (tmp_path / "central.log", tmp_path / "edge.log"):
        text = log.read_text()
        assert "refused" not in text, text[-2000:]
        for secret in PASSWORDS.values():
            assert secret not in text, f"a broker password appears in {log.name}"
