"""CAP 1.2 messages: valid against the OASIS schema, every element the standard requires, references chained.

The schema is read from ../shared/specs/cap12.xsd (skipped with the path when absent). The same
element checks run on a real CAP 1.2 message (NSW Rural Fire Service) so they are known to be sound.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hazardwatch.central.notify.cap import (
    CAP_NS,
    CapOptions,
    cap_identifier,
    cap_time,
    reference_for,
    render_cap,
)

pytestmark = pytest.mark.quick

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
XSD = SPECS / "cap12.xsd"
NS = {"cap": CAP_NS}
SENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")  # CAP 1.2 §3.3.2: no Z, no fraction
OPTS = CapOptions(sender="hazardwatch@futian.example", sender_name="Futian command centre")
T0 = 1795540000.0


@pytest.fixture(scope="module")
def schema() -> Any:
    xmlschema = pytest.importorskip("xmlschema", reason="xmlschema not installed (pip install xmlschema)")
    if not XSD.is_file():
        pytest.skip(f"CAP 1.2 schema not found at {XSD} (the shared specs folder is not mounted)")
    return xmlschema.XMLSchema(str(XSD))


def make_view(version: int = 1, **over: Any) -> dict[str, Any]:
    view = {
        "id": 12,
        "hazard": "smoke",
        "state": "open",
        "severity": "severe",
        "site": "Futian",
        "opened_at": T0,
        "updated_at": T0 + version,
        "last_alert_at": T0 + version,
        "version": version,
        "previous_id": None,
        "score_max": 0.93,
        "camera_count": 2,
        "cameras": [
            {
                "edge_id": "e1",
                "camera_id": "c1",
                "name": "North ridge",
                "lat": 22.5,
                "lon": 114.0,
                "bearing_deg": 90.0,
                "fov_deg": 60.0,
                "state": "online",
            },
            {
                "edge_id": "e2",
                "camera_id": "c7",
                "name": "East tower",
                "lat": 22.52,
                "lon": 114.1,
                "bearing_deg": 250.0,
                "fov_deg": 60.0,
                "state": "online",
            },
        ],
        "location": {"lat": 22.51, "lon": 114.05, "estimated": True},
        "sightings": [{"camera": "e1/c1", "lat": 22.5, "lon": 114.0, "azimuth_deg": 88.0, "half_width_deg": 3.0}],
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_by": None,
        "resolved_at": None,
        "note": "",
        "evidence": [
            {"id": "Zx81", "url": "http://central:8080/api/v1/evidence/Zx81.jpg", "camera": "e1/c1", "at": T0 + 1},
            {"id": "Qq02", "url": "http://central:8080/api/v1/evidence/Qq02.jpg", "camera": "e2/c7", "at": T0 + 2},
        ],
        "alerts_active": 2,
    }
    view.update(over)
    return view


def chain(receiver: str = "cap") -> list[tuple[bytes, dict[str, Any], str, float]]:
    """Alert, Update, Cancel of one incident to one receiver, each referencing the ones before it."""
    plan = [
        ("Alert", make_view(1)),
        ("Update", make_view(2, severity="extreme")),
        ("Cancel", make_view(3, state="resolved", resolved_by="duty1", resolved_at=T0 + 99, note="out")),
    ]
    out = []
    earlier = []
    for i, (msg_type, view) in enumerate(plan):
        key, created = f"inc12-v{view['version']}", T0 + 10 * i + 0.75
        xml = render_cap(
            view,
            msg_type,
            created_at=created,
            receiver=receiver,
            idempotency_key=key,
            references=[reference_for(v, receiver, k, c, OPTS) for v, k, c in earlier],
            options=OPTS,
        )
        out.append((xml, view, key, created))
        earlier.append((view, key, created))
    return out


def parse(xml: bytes) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == f"{{{CAP_NS}}}alert"
    return root


def text(el: ET.Element, path: str) -> str | None:
    return el.findtext(path, namespaces=NS)


def assert_required_elements(root: ET.Element) -> None:
    """CAP 1.2 §3.2: what every alert, info and area must carry, with the value sets the standard fixes."""
    for tag in ("identifier", "sender", "sent", "status", "msgType", "scope"):
        assert (text(root, f"cap:{tag}") or "").strip(), f"alert lacks {tag}"
    assert not re.search(r"[\s,<&]", text(root, "cap:identifier")), "identifier has a forbidden character"
    assert not re.search(r"[\s,<&]", text(root, "cap:sender")), "sender has a forbidden character"
    assert SENT.match(text(root, "cap:sent")), text(root, "cap:sent")
    assert text(root, "cap:status") in ("Actual", "Exercise", "System", "Test", "Draft")
    assert text(root, "cap:msgType") in ("Alert", "Update", "Cancel", "Ack", "Error")
    assert text(root, "cap:scope") in ("Public", "Restricted", "Private")
    infos = root.findall("cap:info", NS)
    assert infos, "no info block"
    for info in infos:
        cats = [c.text for c in info.findall("cap:category", NS)]
        assert cats and set(cats) <= {
            "Geo",
            "Met",
            "Safety",
            "Security",
            "Rescue",
            "Fire",
            "Health",
            "Env",
            "Transport",
            "Infra",
            "CBRNE",
            "Other",
        }
        assert (text(info, "cap:event") or "").strip()
        assert text(info, "cap:urgency") in ("Immediate", "Expected", "Future", "Past", "Unknown")
        assert text(info, "cap:severity") in ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
        assert text(info, "cap:certainty") in ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
        for res in info.findall("cap:resource", NS):
            assert text(res, "cap:resourceDesc") and text(res, "cap:mimeType")
        for area in info.findall("cap:area", NS):
            assert (text(area, "cap:areaDesc") or "").strip()
            for circle in area.findall("cap:circle", NS):
                assert re.fullmatch(r"-?\d+(\.\d+)?,-?\d+(\.\d+)? \d+(\.\d+)?", circle.text), circle.text


# -- schema and required elements -------------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 1, 2], ids=["Alert", "Update", "Cancel"])
def test_messages_validate_against_the_cap12_schema(schema, index):
    xml = chain()[index][0]
    errors = list(schema.iter_errors(xml.decode()))
    assert not errors, errors[0]


@pytest.mark.parametrize("hazard", ["smoke", "fire", "waterlogging", "fallen_tree"])
def test_every_hazard_and_area_shape_validates(schema, hazard):
    for view in (
        make_view(hazard=hazard),
        make_view(hazard=hazard, location=None),
        make_view(hazard=hazard, location=None, cameras=[], evidence=[], site="", camera_count=0),
    ):
        xml = render_cap(view, "Alert", created_at=T0, receiver="cap", idempotency_key="k", options=OPTS)
        schema.validate(xml.decode())
        assert_required_elements(parse(xml))


def test_the_checks_reject_a_broken_message(schema):
    root = parse(chain()[0][0])
    root.remove(root.find("cap:sender", NS))
    broken = ET.tostring(root, encoding="unicode")
    assert not schema.is_valid(broken)
    with pytest.raises(AssertionError, match="sender"):
        assert_required_elements(ET.fromstring(broken))


def test_the_checks_accept_a_real_cap12_message(schema):
    sample = SPECS / "cap-samples" / "australia.cap"
    if not sample.is_file():
        pytest.skip(f"sample not found: {sample}")
    schema.validate(str(sample))
    assert_required_elements(ET.parse(sample).getroot())


@pytest.mark.parametrize("index", [0, 1, 2], ids=["Alert", "Update", "Cancel"])
def test_required_elements_and_values(index):
    xml, view, key, created = chain()[index]
    root = parse(xml)
    assert_required_elements(root)
    msg_type = ("Alert", "Update", "Cancel")[index]
    assert text(root, "cap:msgType") == msg_type
    assert text(root, "cap:status") == "Actual" and text(root, "cap:scope") == "Public"
    assert text(root, "cap:sender") == OPTS.sender
    assert text(root, "cap:sent") == cap_time(created)
    assert text(root, "cap:identifier") == cap_identifier(12, view["version"], "cap", key)
    info = root.find("cap:info", NS)
    assert text(info, "cap:category") == "Fire"
    assert text(info, "cap:event") == "Wildfire smoke"
    assert text(info, "cap:urgency") == ("Past" if msg_type == "Cancel" else "Immediate")
    assert text(info, "cap:severity") == ("Extreme" if msg_type == "Update" else "Severe")
    assert text(info, "cap:certainty") == "Observed"  # two cameras saw it
    assert text(info, "cap:responseType") == ("AllClear" if msg_type == "Cancel" else "Monitor")
    assert text(info, "cap:senderName") == "Futian command centre (Futian)"
    assert text(info, "cap:web") == "http://central:8080/api/v1/incidents/12"
    resources = info.findall("cap:resource", NS)
    assert [text(r, "cap:uri") for r in resources] == [e["url"] for e in view["evidence"]]
    assert {text(r, "cap:mimeType") for r in resources} == {"image/jpeg"}
    assert "e1/c1" in text(resources[0], "cap:resourceDesc")
    area = info.find("cap:area", NS)
    assert text(area, "cap:areaDesc") == "Futian: North ridge, East tower"
    assert [c.text for c in area.findall("cap:circle", NS)] == ["22.51,114.05 1"]


# -- references --------------------------------------------------------------------------------------
def test_references_chain_update_and_cancel_to_earlier_messages():
    msgs = chain()
    roots = [parse(m[0]) for m in msgs]
    own = [f"{text(r, 'cap:sender')},{text(r, 'cap:identifier')},{text(r, 'cap:sent')}" for r in roots]
    assert roots[0].find("cap:references", NS) is None  # an Alert references nothing
    assert text(roots[1], "cap:references") == own[0]
    assert text(roots[2], "cap:references") == f"{own[0]} {own[1]}"  # space-separated, oldest first
    assert len(set(own)) == 3
    for r in roots[1:]:
        for ref in text(r, "cap:references").split(" "):
            sender, ident, sent = ref.split(",")
            assert sender == OPTS.sender and SENT.match(sent) and ident.startswith("hazardwatch-inc12-v")


def test_identifier_is_unique_per_receiver_and_stable_across_retries():
    a = cap_identifier(12, 3, "cap-a", "inc12-v3")
    assert a == cap_identifier(12, 3, "cap-a", "inc12-v3")
    assert a != cap_identifier(12, 3, "cap-b", "inc12-v3")
    assert a != cap_identifier(12, 3, "cap-a", "inc12-v3-repeat1")
    assert re.fullmatch(r"hazardwatch-inc12-v3-[0-9a-f]{12}", a)
    first = render_cap(make_view(), "Alert", created_at=T0, receiver="cap", idempotency_key="k", options=OPTS)
    assert first == render_cap(make_view(), "Alert", created_at=T0, receiver="cap", idempotency_key="k", options=OPTS)


# -- mapping -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hazard", "category", "event"),
    [
        ("smoke", "Fire", "Wildfire smoke"),
        ("fire", "Fire", "Fire"),
        ("waterlogging", "Met", "Waterlogging"),
        ("fallen_tree", "Transport", "Fallen tree"),
    ],
)
def test_category_and_event(hazard, category, event):
    info = parse(render_cap(make_view(hazard=hazard), "Alert", created_at=T0, receiver="r", idempotency_key="k")).find(
        "cap:info", NS
    )
    assert (text(info, "cap:category"), text(info, "cap:event")) == (category, event)


@pytest.mark.parametrize(
    ("over", "severity", "certainty"),
    [
        ({"severity": "minor", "camera_count": 1}, "Minor", "Likely"),
        ({"severity": "moderate"}, "Moderate", "Observed"),
        ({"severity": "extreme"}, "Extreme", "Observed"),
        ({"state": "false_alarm", "resolved_by": "duty2"}, "Severe", "Unlikely"),
    ],
)
def test_severity_and_certainty(over, severity, certainty):
    info = parse(render_cap(make_view(**over), "Alert", created_at=T0, receiver="r", idempotency_key="k")).find(
        "cap:info", NS
    )
    assert (text(info, "cap:severity"), text(info, "cap:certainty")) == (severity, certainty)


@pytest.mark.parametrize(
    ("over", "urgency", "certainty"),
    [
        ({"severity": "moderate", "camera_count": 1, "confidence": 0.9}, "Expected", "Observed"),
        ({"severity": "minor", "camera_count": 1, "confidence": 0.6}, "Future", "Likely"),
        ({"severity": "severe", "camera_count": 1, "confidence": 0.3}, "Immediate", "Possible"),
    ],
)
def test_urgency_follows_severity_and_certainty_follows_confidence(over, urgency, certainty):
    """Issue 16.2: CAP urgency and certainty follow the same severity and calibrated confidence as the page."""
    reasons = [{"code": "base", "delta": 0, "text": "smoke starts at moderate"},
               {"code": "time", "delta": 1, "text": "night: few people to see or report it"}]
    root = parse(render_cap(make_view(**over, severity_reasons=reasons), "Alert", created_at=T0, receiver="r",
                            idempotency_key="k"))
    info = root.find("cap:info", NS)
    assert (text(info, "cap:urgency"), text(info, "cap:certainty")) == (urgency, certainty)
    assert "Severity because: smoke starts at moderate; night: few people to see or report it." in text(
        info, "cap:description")
    params = {text(p, "cap:valueName"): text(p, "cap:value") for p in info.findall("cap:parameter", NS)}
    assert params["hazardwatch:confidence"] == str(over["confidence"])


def test_area_falls_back_to_camera_circles_then_to_a_description():
    root = parse(
        render_cap(
            make_view(hazard="waterlogging", location=None), "Alert", created_at=T0, receiver="r", idempotency_key="k"
        )
    )
    assert [c.text for c in root.iter(f"{{{CAP_NS}}}circle")] == ["22.5,114 0.3", "22.52,114.1 0.3"]
    bare = make_view(location=None, cameras=[], site="Nanshan")
    root = parse(render_cap(bare, "Alert", created_at=T0, receiver="r", idempotency_key="k"))
    assert list(root.iter(f"{{{CAP_NS}}}circle")) == []
    assert text(root, "cap:info/cap:area/cap:areaDesc") == "Nanshan"


def test_sent_is_cap_formatted_in_the_configured_zone():
    assert cap_time(1795540000.9) == "2026-11-24T17:06:40-00:00"  # UTC as -00:00, fraction dropped
    assert cap_time(1795540000.9, CapOptions(timezone="Asia/Shanghai").tz()) == "2026-11-25T01:06:40+08:00"
    root = parse(
        render_cap(
            make_view(),
            "Alert",
            created_at=T0,
            receiver="r",
            idempotency_key="k",
            options=CapOptions(timezone="Asia/Shanghai"),
        )
    )
    assert text(root, "cap:sent").endswith("+08:00")


def test_text_is_escaped_and_unencodable_characters_dropped(schema):
    view = make_view(note="<script>alert('x')</script> & \x00\x07 done", site="Futian & <Nanshan>")
    xml = render_cap(view, "Cancel", created_at=T0, receiver="r", idempotency_key="k")
    root = parse(xml)
    assert "Note: <script>alert('x')</script> &  done" in text(root, "cap:info/cap:description")
    assert text(root, "cap:info/cap:area/cap:areaDesc").startswith("Futian & <Nanshan>")
    schema.validate(xml.decode())


def test_unknown_msg_type_is_refused():
    with pytest.raises(ValueError, match="msg_type"):
        render_cap(make_view(), "Ack", created_at=T0, receiver="r", idempotency_key="k")


def test_procedure_goes_out_as_instruction_and_contact(schema):
    """Issue 16.4: the incident's checklist is CAP `instruction` (done steps marked), its contacts `contact`;
    the document stays valid against the OASIS schema (element order matters)."""
    from hazardwatch.central.response_config import ResponseConfig

    proc = ResponseConfig().snapshot("smoke", "extreme")
    proc["steps"][0]["done"] = True
    proc["contacts"][0]["phone"] = "+86 755 0000 119"
    xml = render_cap(make_view(procedure=proc), "Alert", created_at=T0, receiver="r", idempotency_key="k")
    schema.validate(xml.decode())
    info = parse(xml).find("cap:info", NS)
    instruction = text(info, "cap:instruction")
    assert instruction.splitlines()[0] == "Severe smoke or fire: brigade, leader, evacuation"
    assert "1. Call the forest-fire brigade now with the location and snapshot (done)" in instruction
    assert "4. Prepare the evacuation of nearby residents" in instruction
    assert text(info, "cap:contact").startswith("Forest-fire brigade: +86 755 0000 119; District duty leader")
    cancel = parse(render_cap(make_view(procedure=proc, state="resolved"), "Cancel", created_at=T0, receiver="r",
                              idempotency_key="k2")).find("cap:info", NS)
    assert cancel.find("cap:instruction", NS) is None  # nothing left to do
