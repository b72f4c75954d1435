"""The wire contract: valid messages round-trip, hostile ones are rejected with a reason."""

from __future__ import annotations

import contextlib
import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazardwatch.contract import Alert, Box, Topics, messages, parse_message
from hazardwatch.contract.messages import MAX_PAYLOAD_BYTES, ContractError, contract_json_schema
from hazardwatch.contract.topics import check_segment

pytestmark = pytest.mark.quick


def alert(**kw) -> Alert:
    base = dict(
        edge_id="e1",
        sent_at=1.0,
        alert_id="a" * 32,
        seq=3,
        state="new",
        camera_id="c1",
        hazard="smoke",
        score=0.8,
        first_frame_at=1.0,
        last_frame_at=2.0,
        model_name="m",
        model_version="1",
        boxes=[Box(x1=0.1, y1=0.2, x2=0.3, y2=0.4, score=0.8)],
    )
    base.update(kw)
    return Alert(**base)


def test_round_trip_and_schema_agree():
    payload = alert().model_dump_json()
    assert parse_message(payload) == alert()
    jsonschema.validate(json.loads(payload), contract_json_schema())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (json.dumps({"schema_version": 2, "kind": "alert"}).encode(), "schema_version 2"),
        (b'{"schema_version": 1, "kind": "gossip", "edge_id": "e", "sent_at": 1}', "kind"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "exceeds the limit"),
    ],
)
def test_rejections_name_the_reason(payload, reason):
    with pytest.raises(ContractError, match=reason):
        parse_message(payload)


def test_field_errors_name_the_field():
    doc = json.loads(alert().model_dump_json())
    doc["boxes"][0]["x2"] = 0.0
    with pytest.raises(ContractError, match=r"boxes\.0\.x2: Value error, x2 must be >= x1"):
        parse_message(json.dumps(doc))
    doc = json.loads(alert().model_dump_json())
    doc["camera_id"] = "a/b/#"
    with pytest.raises(ContractError, match="camera_id"):
        parse_message(json.dumps(doc))


def test_a_valid_payload_is_parsed_once(monkeypatch):
    """Central parses every message on the hot path: a valid one goes through pydantic alone, while a
    rejected one is parsed again to name the first failing check (version before fields)."""
    wrong = json.loads(alert().model_dump_json())
    wrong["schema_version"], wrong["camera_id"] = 2, "a/b/#"
    boolean, missing = json.loads(alert().model_dump_json()), json.loads(alert().model_dump_json())
    boolean["schema_version"] = True  # pydantic alone takes true for 1,
    del missing["schema_version"]  # and a missing version as its default
    calls = []
    real = json.loads
    monkeypatch.setattr(messages.json, "loads", lambda raw: calls.append(raw) or real(raw))
    assert parse_message(alert().model_dump_json()) == alert()
    assert calls == []
    with pytest.raises(ContractError, match="schema_version 2 is not supported"):
        parse_message(json.dumps(wrong))
    assert len(calls) == 1
    for doc, version in ((boolean, True), (missing, None)):
        with pytest.raises(ContractError, match=f"schema_version {version} is not supported"):
            parse_message(json.dumps(doc))
    with pytest.raises(ValueError, match="not a boolean"):
        alert(schema_version=True)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
def test_parser_never_raises_anything_but_contract_error(data):
    with contextlib.suppress(ContractError):
        parse_message(data)


def test_topics():
    t = Topics("hw", "edge-1")
    assert t.alerts("cam") == "hw/v1/edge-1/alerts/cam"
    assert t.camera_status("cam") == "hw/v1/edge-1/cameras/cam/status"
    assert Topics("hw").alerts() == "hw/v1/+/alerts/+"
    with pytest.raises(ValueError):
        check_segment("a/#", "camera id")
