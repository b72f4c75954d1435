"""Hostile input, property-based: the MQTT payload parser, the config loader and the central API.

Each target is something a stranger can feed: a payload on the broker, a config file a field engineer
copied from a forum, a request to the API. The property is the same everywhere: the input is refused
with the component's own error (ContractError, ConfigError, a 4xx answer) in bounded time, and never
crashes the process or leaves stored data in a state the API cannot serve.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import math
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hazardwatch.configfile import MAX_CONFIG_BYTES, MAX_DEPTH, ConfigError, load_config, read_yaml
from hazardwatch.contract import parse_message
from hazardwatch.contract.messages import MAX_PAYLOAD_BYTES, ContractError

# -- strategies -----------------------------------------------------------------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)

VALID_ALERT: dict[str, Any] = {
    "schema_version": 1,
    "kind": "alert",
    "edge_id": "e1",
    "sent_at": 1795540000.0,
    "alert_id": "alert-0000001",
    "seq": 4,
    "state": "new",
    "camera_id": "c1",
    "hazard": "smoke",
    "score": 0.8,
    "boxes": [{"x1": 0.1, "y1": 0.1, "x2": 0.2, "y2": 0.2, "score": 0.8}],
    "first_frame_at": 1795539990.0,
    "last_frame_at": 1795540000.0,
    "model_name": "m",
    "model_version": "1",
}
VALID_OTHERS: list[dict[str, Any]] = [
    {"schema_version": 1, "kind": "heartbeat", "edge_id": "e1", "sent_at": 1.0, "uptime_s": 3, "cameras_total": 2,
     "cameras_online": 1, "outbox_depth": 0, "models": {"m": "1"}},
    {"schema_version": 1, "kind": "camera_status", "edge_id": "e1", "sent_at": 1.0, "camera_id": "c1",
     "state": "offline", "since": 1.0},
    {"schema_version": 1, "kind": "availability", "edge_id": "e1", "sent_at": 1.0, "state": "online"},
    {"schema_version": 1, "kind": "set_risk", "edge_id": "e1", "sent_at": 1.0, "command_id": "c-1",
     "hazard": "waterlogging", "level": "high", "cameras": ["c1"], "until": None, "reason": "rain"},
]


@st.composite
def mutated_message(draw: st.DrawFn) -> bytes:
    """A valid message with some fields replaced, removed or added: gets past the JSON and version gates."""
    doc = dict(draw(st.sampled_from([VALID_ALERT, *VALID_OTHERS])))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        key = draw(st.sampled_from(sorted(doc)))
        if action == "replace" and key != "schema_version":
            doc[key] = draw(JSON | st.text(min_size=200, max_size=2000) | st.just("\u0000\ud7ff\ufffd"))
        elif action == "drop" and key not in ("schema_version", "kind"):
            doc.pop(key)
        elif action == "add":
            doc[draw(st.text(max_size=10))] = draw(JSON)
    return json.dumps(doc).encode()


# -- MQTT payloads ----------------------------------------------------------------------------------------
@pytest.mark.quick
@settings(max_examples=400, deadline=None)
@given(mutated_message())
def test_mutated_payloads_parse_or_fail_with_contract_error(payload):
    """Structure-aware fuzz: every outcome is a valid model (that round-trips) or a ContractError."""
    try:
        msg = parse_message(payload)
    except ContractError as exc:
        assert str(exc)  # the reason is always named
        return
    # What the parser accepts is self-consistent: serialising and parsing again gives the same message.
    assert parse_message(msg.model_dump_json()) == msg
    for value in json.loads(msg.model_dump_json()).values():
        if isinstance(value, float):
            assert math.isfinite(value)


@pytest.mark.quick
@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 200_000 + b"]" * 200_000,  # deep nesting within the size limit
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        json.dumps({**VALID_ALERT, "camera_name": "x" * 300_000}).encode(),  # a long string in a bounded field
        json.dumps({**VALID_ALERT, "boxes": [VALID_ALERT["boxes"][0]] * 5000}).encode(),  # a long list
        json.dumps({**VALID_ALERT, "seq": 10**400}).encode(),  # a huge integer
        json.dumps({**VALID_ALERT, "score": 1e308 * 10}).encode(),  # Infinity
        json.dumps(VALID_ALERT).replace('"score": 0.8', '"score": NaN').encode(),
        json.dumps(VALID_ALERT).replace('"sent_at": 1795540000.0', '"sent_at": NaN').encode(),
        json.dumps(VALID_ALERT).replace('"first_frame_at": 1795539990.0', '"first_frame_at": -Infinity').encode(),
        json.dumps({**VALID_ALERT, "snapshot_jpeg_b64": "A" * (MAX_PAYLOAD_BYTES - 1000)}).encode(),
        b" " * (MAX_PAYLOAD_BYTES + 1),
    ],
    ids=["deep-list", "deep-object", "long-string", "long-list", "huge-int", "infinity", "nan", "nan-time",
         "inf-time", "big-b64", "over-limit"],
)
def test_hostile_payloads_are_refused_quickly(payload):
    started = time.perf_counter()
    with pytest.raises(ContractError):
        parse_message(payload)
    assert time.perf_counter() - started < 2.0


# -- config files -----------------------------------------------------------------------------------------
YAML_TOKENS = st.sampled_from(
    ["a", "b:", " ", "  ", "\n", "- ", "[", "]", "{", "}", ",", ":", "&x ", "*x", "&y ", "*y", "!!str ", "!!binary ",
     "!!python/object:os.system ", "? ", "'", '"', "|", ">", "#", "---", "...", "%YAML 1.1", "\t", "~", "1e9999",
     "0x1F", "edge_id: e1", "cameras:", "  - id: c", "<<: *x", "\\ud800", "\u00e9", "\x00"]
)


@st.composite
def yaml_text(draw: st.DrawFn) -> bytes:
    """YAML-ish text: tokens that exercise the scanner, anchors, tags and merge keys, or raw bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    return "".join(draw(st.lists(YAML_TOKENS, max_size=80))).encode("utf-8", "surrogatepass")


def _models() -> list[type]:
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.edge.config import EdgeConfig

    return [EdgeConfig, CentralConfig]


@pytest.mark.quick
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(yaml_text())
def test_random_yaml_only_ever_raises_config_error(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    for model in _models():
        with contextlib.suppress(ConfigError):
            load_config(path, model)


def _bomb(levels: int = 9, fan: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.quick
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_bomb(), "expands to over"),  # "billion laughs": 9^9 strings from a 500-byte file
        (_bomb(levels=40, fan=2), "expands to over|nesting deeper"),  # 2^40 with only two aliases per line
        ("a: &a [*a]\n", "recursive alias"),
        ("a: &a {b: *a}\n", "recursive alias"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper"),  # would overflow the recursive composer
        ("a:\n" + "".join(" " * (2 * i) + f"k{i}:\n" for i in range(1, 200)), "nesting deeper"),
        ("? [a, b]\n: c\n", "plain value"),  # a list as a key is legal YAML, unhashable in Python
        ("x: !!python/object/apply:os.system [echo pwned]\n", "invalid YAML"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("- 1\n- 2\n", "top level must be a mapping"),
    ],
    ids=["billion-laughs", "binary-laughs", "recursive-list", "recursive-map", "deep-flow", "deep-block",
         "complex-key", "python-tag", "duplicate", "list-top"],
)
def test_hostile_yaml_is_refused_quickly(tmp_path, text, reason):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=reason):
        read_yaml(path)
    assert time.perf_counter() - started < 2.0


@pytest.mark.quick
def test_anchors_within_limits_still_work(tmp_path):
    """Bounding aliases must not break the legitimate use: one set of camera settings shared by many."""
    path = tmp_path / "ok.yaml"
    lines = ["common: &hz {fire: {interval_s: 20}}", "cams:"]
    lines += [f"  - {{id: c{i}, hazards: *hz}}" for i in range(300)]
    path.write_text("\n".join(lines) + "\n")
    doc, lines_map = read_yaml(path)
    assert len(doc["cams"]) == 300 and doc["cams"][299]["hazards"] == {"fire": {"interval_s": 20}}
    assert lines_map[("cams", "299")] == 302
    nested = tmp_path / "nested.yaml"
    nested.write_text("a:" + "".join(f"\n{'  ' * i}k{i}:" for i in range(1, MAX_DEPTH)) + " 1\n")
    read_yaml(nested)  # MAX_DEPTH - 1 levels of mappings are fine


@pytest.mark.quick
def test_huge_config_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("a: [" + "1, " * (MAX_CONFIG_BYTES // 3 + 10) + "1]\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="over the"):
        read_yaml(path)
    assert time.perf_counter() - started < 1.0
    # a large legitimate document (50,000 nodes, ~100 kB) is still fine
    path.write_text("a: [" + "1," * 50_000 + "1]\n")
    doc, _ = read_yaml(path)
    assert len(doc["a"]) == 50_001


# -- the central API ---------------------------------------------------------------------------------------
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"0" * 200 + b"\xff\xd9").decode()


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real central process (SQLite, no broker) holding three incidents with evidence."""
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.central.services import incidents
    from hazardwatch.central.store import Database
    from hazardwatch.contract import Alert
    from hazardwatch.harness.central_proc import CentralProcess, alert_payload, write_central_config

    tmp = tmp_path_factory.mktemp("fuzz-central")
    url = f"sqlite:///{tmp / 'central.db'}"
    db = Database(url)
    db.migrate()
    cfg = CentralConfig.model_validate({"broker": None})
    for k in range(3):
        doc = alert_payload(0, edge=f"e{k}", alert_id=f"alert-fuzz-{k:04d}", lat=20 + k, snapshot=JPEG)
        with db.tx() as tx:
            incidents.apply_alert(tx, Alert.model_validate(doc), cfg, time.time())
    db.close()
    config = write_central_config(tmp / "central.yaml", broker_port=None, database_url=url)
    proc = CentralProcess(config, tmp / "central.log").start()
    try:
        yield proc
    finally:
        proc.stop()


def raw_request(base: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
    """One request with exactly these bytes (urllib would add or fix headers)."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


POST_PATHS = [
    "/api/v1/login",
    "/api/v1/incidents/1/acknowledge",
    "/api/v1/incidents/2/resolve",
    "/api/v1/incidents/3/false-alarm",
    "/api/v1/incidents/1/reopen",
    "/api/v1/silences",
    "/api/v1/deliveries/1/retry",
]
BODY_KEYS = ["note", "token", "comment", "edge_id", "camera_id", "hazard", "area", "starts_at", "ends_at",
             "duration_s", "lat", "lon", "radius_km"]
PLAUSIBLE = st.dictionaries(
    st.sampled_from(BODY_KEYS),
    JSON | st.floats() | st.dictionaries(st.sampled_from(["lat", "lon", "radius_km"]), st.floats(), max_size=3),
    max_size=6,
)


@pytest.mark.slow
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(POST_PATHS),
    body=PLAUSIBLE.map(lambda d: json.dumps(d, allow_nan=True).encode())
    | JSON.map(lambda d: json.dumps(d).encode())
    | st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
    token=st.sampled_from(["admin-token-0123456789", "op-token-0123456789", "viewer-token-0123456789", ""]),
)
def test_random_post_bodies_never_cause_a_server_error(central, path, body, content_type, token):
    headers = {"Content-Type": content_type} if content_type else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status = raw_request(central.url, "POST", path, body, headers)
    assert status < 500, (path, body[:200], status)


QUERY_KEYS = ["state", "hazard", "camera", "since", "limit", "offset", "include_expired"]
QUERY_VALUES = (
    st.text(max_size=30)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.sampled_from(["nan", "inf", "-inf", "1e999", "open", "smoke", "pending", "dead", "true", "0", "-1", "e1/c1"])
)


@pytest.mark.slow
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        ["/api/v1/incidents", "/api/v1/silences", "/api/v1/deliveries", "/api/v1/cameras", "/api/v1/edges"]
    )
    | st.text(max_size=20).map(lambda s: "/api/v1/incidents/" + urllib.parse.quote(s, safe=""))
    | st.text(max_size=70).map(lambda s: "/api/v1/evidence/" + urllib.parse.quote(s, safe="") + ".jpg"),
    query=st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=5),
)
def test_random_queries_never_cause_a_server_error(central, path, query):
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    status = raw_request(central.url, "GET", target, None, {"Authorization": "Bearer admin-token-0123456789"})
    assert status < 500, (target, status)


@pytest.mark.slow
def test_after_the_fuzz_the_store_is_intact_and_the_service_alive(central):
    """Runs after the two fuzz tests (file order): everything stored is still served and consistent."""
    from hazardwatch.harness.central_proc import ADMIN

    assert central.proc.poll() is None
    assert central.get("/healthz", token=None)["status"] == "ok"
    listing = central.get("/api/v1/incidents?limit=500", token=ADMIN)
    assert listing["total"] == 3 == len(listing["items"])
    for item in listing["items"]:
        detail = central.get(f"/api/v1/incidents/{item['id']}", token=ADMIN)
        assert detail["state"] in ("open", "acknowledged", "resolved", "false_alarm")
        assert detail["version"] >= 1 and detail["timeline"][0]["kind"] == "opened"
        for ev in detail["evidence"]:
            status, _ = central.request("GET", urllib.parse.urlsplit(ev["url"]).path, token=None)
            assert status == 200
    for s in central.get("/api/v1/silences?include_expired=true", token=ADMIN)["items"]:
        assert s["comment"] and math.isfinite(s["starts_at"]) and math.isfinite(s["ends_at"])
        assert s["ends_at"] >= s["starts_at"], s
    assert central.get("/api/v1/deliveries", token=ADMIN)["counts"] is not None
    log = central.log()
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]


