"""Config loading: strict keys, errors naming file, line, key path and reason."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hazardwatch.configfile import ConfigError, load_config
from hazardwatch.edge.config import EdgeConfig
from hazardwatch.edge.engine import EngineSetupError, load_detectors

pytestmark = pytest.mark.quick

GOOD = """\
edge_id: e1
broker: {host: 127.0.0.1, port: 1883}
models:
  - manifest: m.json
cameras:
  - id: cam1
    source: rtsp://10.0.0.1/stream
    hazards:
      smoke: {interval_s: 10}
    zones:
      - id: road
        polygon: [[0, 0.5], [1, 0.5], [1, 1]]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "edge.yaml"
    p.write_text(text)
    return p


def test_good_config_resolves_paths_relative_to_file(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), EdgeConfig)
    assert cfg.models[0].manifest == tmp_path / "m.json"
    assert cfg.cameras[0].hazards["smoke"].interval_s == 10
    assert cfg.outbox.path == tmp_path / "var/edge-outbox.db"


def test_unknown_key_names_line_and_path(tmp_path):
    text = GOOD.replace("      smoke: {interval_s: 10}", "      smoke: {interval_s: 10, treshold: 0.3}")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), EdgeConfig)
    msg = str(err.value)
    assert f"{tmp_path / 'edge.yaml'}:9 cameras.0.hazards.smoke.treshold: unknown key" in msg


def test_bad_values_are_all_reported(tmp_path):
    text = GOOD.replace("port: 1883", "port: 99999").replace("rtsp://10.0.0.1/stream", "ftp://x/y")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), EdgeConfig)
    keys = [p.key for p in err.value.problems]
    assert "broker.port" in keys and "cameras.0.source" in keys
    by_key = {p.key: p for p in err.value.problems}
    assert by_key["broker.port"].line == 2
    assert "unsupported source scheme 'ftp'" in by_key["cameras.0.source"].reason


def test_cross_checks(tmp_path):
    text = GOOD.replace("smoke: {interval_s: 10}", "smoke: {interval_s: 10, zones: [river]}")
    with pytest.raises(ConfigError, match="unknown zone 'river'"):
        load_config(write(tmp_path, text), EdgeConfig)
    dup = GOOD + "  - id: cam1\n    source: rtsp://x/y\n    hazards: {smoke: {}}\n"
    with pytest.raises(ConfigError, match="repeated: cam1"):
        load_config(write(tmp_path, dup), EdgeConfig)
    zones = "    zones: [{id: road, polygon: [[0, 0], [1, 0], [1, 1]]}, {id: road, polygon: [[0, 0], [0, 1], [1, 1]]}]"
    twice = GOOD + "  - id: cam2\n    source: rtsp://x/y\n    hazards: {smoke: {}}\n" + zones + "\n"
    with pytest.raises(ConfigError, match="zone ids must be unique within a camera; repeated: road"):
        load_config(write(tmp_path, twice), EdgeConfig)


def test_password_given_twice_is_an_error(tmp_path):
    text = GOOD.replace("port: 1883}", "port: 1883, password: {value: x, env: PW}}")
    with pytest.raises(ConfigError, match=r"give exactly one of env, file or value \(given: env, value\)"):
        load_config(write(tmp_path, text), EdgeConfig)


@pytest.mark.parametrize(
    ("section", "removed", "replacement"),
    [
        ("broker: {host: 127.0.0.1, port: 1883", "password_env: PW", "password: {env: NAME}"),
        ("broker: {host: 127.0.0.1, port: 1883", "password_file: pw.txt", "password: {file: PATH}"),
        ("central: {url: 'http://c:8080'", "token_env: TK", "token: {env: NAME}"),
        ("central: {url: 'http://c:8080'", "token_file: tk.txt", "token: {file: PATH}"),
    ],
)
def test_a_removed_secret_key_fails_naming_its_replacement(tmp_path, section, removed, replacement):
    """One secret convention everywhere: the edge's older keys are refused, never ignored."""
    text = GOOD.replace("broker: {host: 127.0.0.1, port: 1883}", f"{section}, {removed}}}")
    if section.startswith("central"):
        text = GOOD + f"{section}, {removed}}}\n"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), EdgeConfig)
    where = "central" if section.startswith("central") else "broker"
    problem = next(p for p in err.value.problems if p.key == where)
    assert f"{removed.split(':')[0]} is no longer accepted: write {replacement}" in problem.reason
    assert problem.line is not None


def test_a_plain_string_secret_is_refused_on_both_sides(tmp_path):
    from hazardwatch.central.config import CentralConfig

    text = GOOD.replace("port: 1883}", "username: u, password: hunter2}")
    with pytest.raises(ConfigError, match=r"broker.password: .*a secret is a mapping: \{env: NAME\}"):
        load_config(write(tmp_path, text), EdgeConfig)
    central = tmp_path / "central.yaml"
    central.write_text("broker: {username: c, password: hunter2}\n")
    with pytest.raises(ConfigError, match=r"broker.password: .*a secret is a mapping"):
        load_config(central, CentralConfig)


def test_tls_cert_without_key_is_refused_on_both_sides(tmp_path):
    from hazardwatch.central.config import CentralConfig

    text = GOOD.replace("port: 1883}", "port: 8883, tls: {ca_file: ca.pem, cert_file: c.pem}}")
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        load_config(write(tmp_path, text), EdgeConfig)
    central = tmp_path / "central.yaml"
    central.write_text("broker: {tls: {ca_file: ca.pem, key_file: k.pem}}\n")
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        load_config(central, CentralConfig)


def test_yaml_syntax_error_and_duplicate_key_have_lines(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "edge_id: e1\ncameras: [\n"), EdgeConfig)
    assert "invalid YAML" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "edge_id: e1\nedge_id: e2\n"), EdgeConfig)
    assert "duplicate key 'edge_id'" in str(err.value) and ":2" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", EdgeConfig)


def test_cli_config_check_exit_codes(tmp_path):
    bad = write(tmp_path, GOOD.replace("edge_id: e1", "edge_id: e1\nsitee: x"))
    run = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "config", "check", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert f"{bad}:2 sitee: unknown key" in run.stderr


def config_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "config", "check", str(path)], capture_output=True, text=True
    )


def test_example_config_checks_clean(tmp_path):
    """The example as shipped, beside the models it names and the demo frames it replays (rendered for real)."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "configs").mkdir()
    example = tmp_path / "configs/edge.example.yaml"
    shutil.copy(root / "configs/edge.example.yaml", example)
    (tmp_path / "models").symlink_to(root / "models")
    subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "demo-frames", "--out", str(tmp_path / "var/demo-frames")],
        check=True,
        capture_output=True,
    )
    run = config_check(example)
    assert run.returncode == 0, run.stderr
    assert "ok (edge edge-futian-01" in run.stdout


def test_exported_schemas_are_current(tmp_path):
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "schemas", "export", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for fresh in tmp_path.glob("*.json"):
        committed = root / "configs/schemas" / fresh.name
        assert committed.read_text() == fresh.read_text(), f"{committed} is stale: run hazardwatch schemas export"


CENTRAL = """\
instance_id: central-1
timezone: Asia/Shanghai
broker: null
"""


def test_central_config_refuses_a_misspelt_time_zone(tmp_path):
    good = tmp_path / "central.yaml"
    good.write_text(CENTRAL)
    assert config_check(good).returncode == 0, config_check(good).stderr
    bad = tmp_path / "bad.yaml"
    for zone in ("Asia/Shenzen", "America", "../../etc/passwd"):
        bad.write_text(CENTRAL.replace("Asia/Shanghai", zone))
        run = config_check(bad)
        assert run.returncode == 2, zone
        assert f"{bad}:2 timezone: Value error, unknown time zone {zone!r}" in run.stderr


def shipped_model_config(tmp_path: Path, source: str) -> Path:
    """An edge config naming the real demo model (copied) and `source`."""
    root = Path(__file__).resolve().parents[2]
    for name in ("red-patch.json", "red-patch.onnx"):
        shutil.copy(root / "models/demo" / name, tmp_path / name)
    return write(tmp_path, GOOD.replace("m.json", "red-patch.json").replace("rtsp://10.0.0.1/stream", source))


def test_config_check_refuses_a_local_source_that_does_not_exist(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    assert config_check(shipped_model_config(tmp_path, "frames")).returncode == 0
    assert config_check(shipped_model_config(tmp_path, "rtsp://10.0.0.1/unreachable")).returncode == 0
    path = shipped_model_config(tmp_path, "framez")
    run = config_check(path)
    assert run.returncode == 2
    assert f"{path}:7 cameras.0.source: {tmp_path / 'framez'} does not exist" in run.stderr


def test_missing_model_file_names_the_config_line(tmp_path):
    path = shipped_model_config(tmp_path, "rtsp://10.0.0.1/stream")
    (tmp_path / "red-patch.onnx").unlink()
    run = config_check(path)
    assert run.returncode == 2
    assert f"{path}:4 models.0.manifest: " in run.stderr and "red-patch.onnx does not exist" in run.stderr
    # The edge refuses to start with the same sentence, before it opens anything.
    edge = subprocess.run(
        [sys.executable, "-m", "hazardwatch.cli", "edge", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert edge.returncode == 2
    assert f"{path}:4 models.0.manifest: " in edge.stderr


def test_two_models_for_one_hazard_name_both_manifests(tmp_path):
    shipped = Path(__file__).resolve().parents[2] / "models" / "fallen-tree-scene" / "fallen-tree-scene.json"
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for copy in (first, second):
        shutil.copy(shipped, copy)
    cfg = EdgeConfig.model_validate(
        {
            "edge_id": "e1",
            "cameras": [{"id": "c1", "source": "rtsp://x/y", "hazards": {"fallen_tree": {}}}],
            "models": [{"manifest": str(first)}, {"manifest": str(second)}],
        }
    )
    with pytest.raises(EngineSetupError, match=f"{first} and {second} both serve hazard fallen_tree"):
        load_detectors(cfg)
