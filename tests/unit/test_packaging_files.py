"""The deployment files are checked as far as this machine can: no Docker engine runs here.

- every file the Dockerfiles and the compose file reference exists (or is written by the credentials
  script), the compose file has the expected services and passes `docker compose config` when the
  compose plugin is installed;
- the images install with the same extras as the tests (.ci/run), the edge image without torch;
- the generated Mosquitto password file and ACL work with a real Mosquitto running the shipped config;
- the systemd unit parses, and the edge speaks its notify protocol (READY=1, WATCHDOG=1).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from hazardwatch.procs import free_port, mosquitto_binary, wait_port

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
UNIT = REPO / "deploy" / "systemd" / "hazardwatch-edge.service"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def _load_gen_credentials():
    """The credentials script is a standalone file, not a package module: load it by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_credentials", DOCKER / "mosquitto" / "gen_credentials.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_credentials = _load_gen_credentials()


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def generated_files(tmp_path: Path) -> set[str]:
    """Paths (relative to docker/) that gen_credentials.py writes with its defaults."""
    out = tmp_path / "generated"
    gen_credentials.generate(out, ["edge-01"])
    return {f"generated/{p.relative_to(out).as_posix()}" for p in out.rglob("*") if p.is_file()}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


# -- Dockerfiles ---------------------------------------------------------------------------------------
@pytest.mark.quick
def test_both_images_exist():
    assert {p.name for p in DOCKERFILES} >= {"edge.Dockerfile", "central.Dockerfile"}


@pytest.mark.quick
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copy_sources_exist(dockerfile):
    """Images build from the repository root (the compose contexts say so too)."""
    copied = 0
    for word, args in instructions(dockerfile):
        if word not in ("COPY", "ADD"):
            continue
        parts = [a for a in shlex.split(args) if not a.startswith("--")]
        assert not any(a.startswith("--from") for a in shlex.split(args)), "no multi-stage copies expected"
        for src in parts[:-1]:
            assert (REPO / src).exists(), f"{dockerfile.name}: {word} {src}: no such file in the repository"
            copied += 1
    assert copied, f"{dockerfile.name} copies nothing"


def pip_extras(line: str) -> set[str] | None:
    """The extras of the project installed by a pip command line (`.[a,b]` -> {a, b}); None if none."""
    m = re.search(r"pip(?:3)?\s+install\b(.*)", line)
    if not m:
        return None
    for token in shlex.split(m.group(1)):
        target = token.removeprefix("-e").strip()
        if target == ".":
            return set()
        m2 = re.fullmatch(r"\.\[([A-Za-z0-9_,-]+)\]", target)
        if m2:
            return set(m2.group(1).split(","))
    return None


@pytest.mark.quick
def test_images_install_with_the_extras_of_the_tests_and_the_edge_has_no_torch():
    ci = [e for line in (REPO / ".ci" / "run").read_text().splitlines() if (e := pip_extras(line)) is not None]
    assert ci, ".ci/run installs the project with pip"
    ci_extras = set().union(*ci) - {"test"}
    found = {}
    for dockerfile in DOCKERFILES:
        runs = [args for word, args in instructions(dockerfile) if word == "RUN"]
        extras = [e for args in runs if (e := pip_extras(args)) is not None]
        assert len(extras) == 1, f"{dockerfile.name}: expected one pip install of the project, found {extras}"
        assert extras[0] <= ci_extras, f"{dockerfile.name} installs extras {extras[0] - ci_extras} the tests never do"
        found[dockerfile.name] = extras[0]
    assert found["edge.Dockerfile"] == {"edge"}
    assert "edge" not in found["central.Dockerfile"], "central needs no OpenCV or ONNX Runtime"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = [*pyproject["project"]["dependencies"], *pyproject["project"]["optional-dependencies"]["edge"]]
    assert not [d for d in deps if re.match(r"torch\b", d)], "torch must stay out of the edge image"


# -- compose ------------------------------------------------------------------------------------------
@pytest.mark.quick
def test_compose_has_the_site_services():
    doc = compose()
    assert set(doc["services"]) == {"mosquitto", "postgres", "central", "edge"}
    for name in ("central", "edge"):
        assert doc["services"][name]["build"]["dockerfile"] == f"docker/{name}.Dockerfile"
    declared = set(doc.get("secrets", {}))
    for name, svc in doc["services"].items():
        for ref in svc.get("secrets", []):
            source = ref if isinstance(ref, str) else ref["source"]
            assert source in declared, f"{name} uses undeclared secret {source}"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith((".", "/")):
                assert src in doc.get("volumes", {}), f"{name} uses undeclared volume {src}"
    conf = (DOCKER / "mosquitto" / "mosquitto.conf").read_text()
    assert int(re.search(r"^max_queued_messages\s+(\d+)", conf, re.M).group(1)) >= 100_000
    assert re.search(r"^allow_anonymous\s+false", conf, re.M)


@pytest.mark.quick
def test_every_file_compose_references_exists(tmp_path):
    doc = compose()
    generated = generated_files(tmp_path)
    referenced = []
    for name, svc in doc["services"].items():
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context.is_dir(), f"{name}: build context {build['context']} missing"
            assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} missing"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith((".", "/")):
                referenced.append((name, src))
        env_files = svc.get("env_file", [])
        for env in [env_files] if isinstance(env_files, str) else env_files:
            referenced.append((name, env if isinstance(env, str) else env["path"]))
    for secret, spec in doc.get("secrets", {}).items():
        referenced.append((f"secret {secret}", spec["file"]))
    assert referenced
    for who, src in referenced:
        rel = os.path.normpath(src)
        if rel.startswith("generated/"):
            assert rel in generated, f"{who}: {src} is neither in the repository nor written by gen_credentials.py"
        else:
            assert (DOCKER / rel).exists(), f"{who}: {src} does not exist"
    # The configs the containers mount validate against the project's schemas.
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.configfile import load_config
    from hazardwatch.edge.config import EdgeConfig

    edge = load_config(DOCKER / "config" / "edge.yaml", EdgeConfig)
    load_config(DOCKER / "config" / "central.yaml", CentralConfig)
    assert edge.broker is not None and edge.broker.username == edge.edge_id == "edge-01"
    for model in edge.models:
        assert (REPO / model.manifest.relative_to("/opt/hazardwatch")).is_file()


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_docker_compose_config_accepts_the_file(tmp_path):
    if not docker_compose_available():
        pytest.skip("the docker CLI with the compose plugin is not installed (no engine is needed for `config`)")
    copy = tmp_path / "docker"
    shutil.copytree(DOCKER, copy, ignore=shutil.ignore_patterns("generated"))
    gen_credentials.generate(copy / "generated", ["edge-01"])
    result = subprocess.run(
        ["docker", "compose", "-f", str(copy / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# -- Mosquitto credentials and ACL ----------------------------------------------------------------------
@pytest.mark.quick
def test_password_hash_has_mosquitto_format():
    entry = gen_credentials.hash_password("secret", salt=b"0123456789ab")
    iterations, salt, digest = entry.split("$")[2:]
    assert entry.startswith("$7$101$") and iterations == "101"
    assert len(salt) == 16 and len(digest) == 88  # base64 of 12 and 64 bytes, as mosquitto_passwd writes


@pytest.mark.mqtt
def test_generated_credentials_and_acl_work_with_the_shipped_mosquitto_config(tmp_path):
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    out = tmp_path / "generated"
    gen_credentials.generate(out, ["edge-01", "edge-02"])
    port = free_port()
    conf = (DOCKER / "mosquitto" / "mosquitto.conf").read_text()
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.M)
    conf = conf.replace("/mosquitto/auth/passwd", str(out / "mosquitto" / "passwd"))
    conf = conf.replace("/mosquitto/auth/acl", str(out / "mosquitto" / "acl"))
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/")
    if os.geteuid() == 0:
        conf += "user root\n"  # as root it would switch to `mosquitto`, which cannot read the temp dir
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=log)
    clients: list[mqtt.Client] = []

    def connect(user: str, password: str) -> tuple[mqtt.Client, list]:
        got: list = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{len(clients)}", protocol=mqtt.MQTTv5)
        c.username_pw_set(user, password)
        c.on_message = lambda _c, _u, m: got.append(m.topic)
        codes: list = []
        c.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc)
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients.append(c)
        deadline = time.monotonic() + 5
        while not codes and time.monotonic() < deadline:
            time.sleep(0.02)
        assert codes, f"{user}: no CONNACK"
        if codes[0].is_failure:
            raise PermissionError(str(codes[0]))
        return c, got

    try:
        wait_port("127.0.0.1", port, timeout=10)
        pw = {p.name.removesuffix("-mqtt.pass"): p.read_text().strip() for p in (out / "secrets").glob("*-mqtt.pass")}
        with pytest.raises(PermissionError):
            connect("edge-01", "wrong")
        central, received = connect("central", pw["central"])
        central.subscribe("$share/hazardwatch-central/hazardwatch/v1/+/alerts/+", qos=1)
        central.subscribe("hazardwatch/v1/+/availability", qos=1)
        time.sleep(0.3)
        edge, _ = connect("edge-01", pw["edge-01"])
        edge.publish("hazardwatch/v1/edge-01/alerts/cam-1", b"{}", qos=1).wait_for_publish(5)
        edge.publish("hazardwatch/v1/edge-02/alerts/cam-1", b"{}", qos=1).wait_for_publish(5)  # forged
        edge.publish("hazardwatch/v1/edge-01/availability", b"{}", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert sorted(received) == ["hazardwatch/v1/edge-01/alerts/cam-1", "hazardwatch/v1/edge-01/availability"]
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        log.close()


# -- systemd ------------------------------------------------------------------------------------------
def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), raw
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not KEY=VALUE inside a section: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.mark.quick
def test_systemd_unit_structure():
    unit = unit_sections(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    assert svc["Type"] == ["notify"] and svc["Restart"] == ["on-failure"]
    assert int(svc["WatchdogSec"][0]) > 0 and float(svc["RestartSec"][0]) >= 1
    assert int(unit["Unit"]["StartLimitBurst"][0]) >= 1 and int(unit["Unit"]["StartLimitIntervalSec"][0]) > 0
    exec_start = shlex.split(svc["ExecStart"][0])
    assert exec_start[1:] == ["edge", "--config", "/etc/hazardwatch/edge.yaml"]
    assert svc["User"] != ["root"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed; the structural test still ran")
    # verify wants the executables to exist: point them at this checkout's venv.
    text = UNIT.read_text().replace(
        "/opt/hazardwatch/.venv/bin/hazardwatch", shutil.which("hazardwatch") or "/bin/true"
    )
    unit = tmp_path / "hazardwatch-edge.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


@pytest.mark.slow
def test_edge_tells_systemd_it_is_ready_and_alive(tmp_path):
    """The unit is Type=notify with a watchdog: the edge must send READY=1 and then WATCHDOG=1."""
    from hazardwatch.edge.demo_scene import write_scene

    write_scene(tmp_path / "frames", frames=3)
    config = tmp_path / "edge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "edge_id": "notify-test",
                "broker": None,
                "models": [{"manifest": str(REPO / "models" / "demo" / "red-patch.json")}],
                "cameras": [{"id": "c1", "source": str(tmp_path / "frames"), "hazards": {"fire": {"interval_s": 1}}}],
                "outbox": {"path": str(tmp_path / "outbox.db")},
                "http": {"host": "127.0.0.1", "port": 0},
            }
        )
    )
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazardwatch.cli", "edge", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    messages: list[str] = []
    try:
        while not any(m.startswith("WATCHDOG=1") for m in messages) or len(messages) < 3:
            messages.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        sock.settimeout(2)
        with_stop = [*messages]
        try:
            while True:
                with_stop.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    assert messages[0].startswith("READY=1"), messages
    assert "STOPPING=1" in with_stop
