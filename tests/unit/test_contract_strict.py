"""The parser and the published JSON Schema give the same verdict on every payload (issue 17, point 1).

Hypothesis mutates valid messages of every kind (a field replaced by a value of another JSON type, a
numeric string, an integral float, a huge number; a field dropped or added, also inside boxes and maps)
and `configs/schemas/mqtt-contract.schema.json` and `parse_message` must give the same verdict.
The one documented difference: the parser also checks a box's corner order, which JSON Schema cannot say.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hazardwatch.contract import parse_message
from hazardwatch.contract.messages import ContractError

pytestmark = pytest.mark.quick

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "configs" / "schemas" / "mqtt-contract.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
BOX_ORDER = ("x2 must be >= x1", "y2 must be >= y1")


def _ecma_pattern(validator, pattern, instance, schema):
    """ECMA-262 reads `$` as the end of input; Python's re also matches it before a final newline."""
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})
VALIDATOR = Validator(SCHEMA)

ENVELOPE = {"schema_version": 1, "edge_id": "e1", "sent_at": 1_700_000_000.5}
BOX = {"x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.4, "score": 0.8}
VALID = {
    "alert": {
        "alert_id": "a" * 32,
        "seq": 7,
        "state": "new",
        "camera_id": "c1",
        "hazard": "smoke",
        "score": 0.8,
        "boxes": [BOX],
        "first_frame_at": 1_700_000_000.0,
        "last_frame_at": 1_700_000_001.0,
        "model_name": "m",
        "model_version": "1",
        "lat": 31.2,
        "lon": 121.5,
    },
    "camera_status": {
        "camera_id": "c1",
        "state": "degraded",
        "reason": "covered",
        "since": 1_700_000_000.0,
        "last_frame_at": 1_700_000_000.0,
        "diagnoses": {"covered": 0.9},
        "night": False,
    },
    "availability": {"state": "online"},
    "heartbeat": {"uptime_s": 5.0, "cameras_total": 3, "cameras_online": 2, "outbox_depth": 0, "models": {"m": "1"}},
    "set_risk": {"command_id": "c-1", "hazard": "fire", "level": "high", "cameras": ["c1"], "until": None},
    "rollout": {
        "command_id": "c-2",
        "rollout_id": "r-1",
        "hazard": "smoke",
        "model_name": "m",
        "model_version": "2",
        "sha256": "0" * 64,
        "size": 1000,
    },
    "model_status": {"hazard": "smoke", "state": "active", "model_name": "m", "model_version": "2"},
    "learn_normal": {"command_id": "c-3", "camera_id": "c1", "hazard": "smoke", "alert_id": "a-1", "box": BOX},
}


def schema_verdict(doc: object) -> bool:
    return VALIDATOR.is_valid(doc)


def code_verdict(doc: object) -> tuple[bool, str]:
    try:
        parse_message(json.dumps(doc))
    except ContractError as exc:
        return False, str(exc)
    return True, ""


def assert_agree(doc: object) -> None:
    schema_ok = schema_verdict(doc)
    code_ok, why = code_verdict(doc)
    if schema_ok and not code_ok and any(b in why for b in BOX_ORDER):
        return
    detail = "" if schema_ok else next(VALIDATOR.iter_errors(doc)).message
    assert schema_ok == code_ok, f"schema {schema_ok} ({detail}) vs parser {code_ok} ({why}) on {doc!r}"


def message(kind: str) -> dict:
    return {**ENVELOPE, "kind": kind, **json.loads(json.dumps(VALID[kind]))}


def test_every_baseline_is_valid_for_both():
    assert set(VALID) == set(SCHEMA["discriminator"]["mapping"]), "add a valid baseline for every message kind"
    for kind in VALID:
        assert schema_verdict(message(kind)), kind
        assert code_verdict(message(kind)) == (True, ""), kind


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", "77001"),
        ("schema_version", True),
        ("score", True),
        ("lat", "31.5"),
        ("sent_at", "1700000000"),
        ("state", 1),
        ("seq", -1),
        ("seq", 2**63),
        ("seq", 7.5),
    ],
)
def test_issue_examples_are_rejected_by_both(field, value):
    doc = message("alert")
    doc[field] = value
    assert not schema_verdict(doc)
    assert code_verdict(doc)[0] is False


def test_integral_float_and_missing_envelope_agree():
    doc = message("alert")
    doc["seq"] = 7.0  # JSON Schema: an integer
    assert_agree(doc)
    assert code_verdict(doc)[0]
    for key in ("schema_version", "kind"):
        doc = message("heartbeat")
        del doc[key]
        assert_agree(doc)
        assert not code_verdict(doc)[0]


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, 2**63 - 1, 2**63, -1, 1.0, 2.0, 0.5, 1e308, -1e308, 360.0, 90.0, 91.0])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["1", "31.5", "77001", "true", "new", "smoke", "online", "c1", "a" * 32, "x\n", "0" * 64])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x1", "a", "m", "covered"]), inner),
    max_leaves=6,
)


def _targets(doc: dict) -> list[tuple[dict, str]]:
    """(container, key) pairs that a mutation may touch: top level and nested objects."""
    out = [(doc, k) for k in doc] + [(doc, "extra")]
    for value in doc.values():
        if isinstance(value, dict):
            out += [(value, k) for k in value] + [(value, "Bad-Key")]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out += [(value[0], k) for k in value[0]] + [(value[0], "extra")]
    return out


@st.composite
def mutated(draw: st.DrawFn) -> dict:
    doc = message(draw(st.sampled_from(sorted(VALID))))
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from(_targets(doc)))
        if draw(st.booleans()) and key in container:
            del container[key]
        else:
            container[key] = draw(JSON_VALUES)
    return doc


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_get_the_same_verdict(doc):
    assert_agree(doc)
