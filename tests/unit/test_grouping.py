"""Grouped notifications' pure parts: group labels and keys, the group's CAP alert (valid CAP 1.2, one
<info> per incident, Update with references) and its webhook body."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from test_cap import NS, OPTS, T0, make_view, schema  # noqa: F401  (schema is a fixture)

from hazardwatch.central.config import ReceiverConfig
from hazardwatch.central.notify.cap_group import group_identifier, group_reference, render_group_cap
from hazardwatch.central.notify.webhook import render_group_body
from hazardwatch.central.services.grouping import area_label, group_idempotency_key, group_of

pytestmark = pytest.mark.quick


def receiver(**kw: Any) -> ReceiverConfig:
    return ReceiverConfig(name="platform", kind="cap", url="http://x/cap", **kw)


def test_group_keys_follow_the_labels_asked_for_in_order():
    r = receiver(group_by=["hazard", "area"], group_area_km=10)
    g = group_of(r, "waterlogging", "severe", ["e1/c1"], 22.5, 113.9)
    assert g.labels == {"hazard": "waterlogging", "area": area_label(22.5, 113.9, 10)}
    assert g.key == f"hazard=waterlogging|area={g.labels['area']}"
    assert group_of(r, "waterlogging", "minor", ["e9/c2"], 22.5001, 113.9001).key == g.key  # same square
    assert group_of(r, "fallen_tree", "severe", ["e1/c1"], 22.5, 113.9).key != g.key
    assert group_of(receiver(group_by=["edge"]), "smoke", "minor", ["e7/c1", "e8/c1"], None, None).key == "edge=e7"
    assert area_label(None, 113.9, 10) == "unknown"


def test_area_squares_are_about_the_size_asked_for():
    # 10 km squares: points 3 km apart mostly share one, points 30 km apart never do
    near = sum(area_label(22.5 + k * 0.001, 113.9, 10) == area_label(22.5 + k * 0.001 + 0.027, 113.9, 10)
               for k in range(100))
    far = sum(area_label(22.5, 113.9 + k * 0.001, 10) == area_label(22.5, 113.9 + k * 0.001 + 0.29, 10)
              for k in range(100))
    assert near >= 60 and far == 0


def test_group_by_refuses_a_label_twice():
    with pytest.raises(ValueError, match="group_by lists a label twice"):
        receiver(group_by=["hazard", "hazard"])


def _payload() -> dict[str, Any]:
    first = make_view(1)
    second = make_view(1, id=13, hazard="waterlogging")
    closed = make_view(3, id=14, state="resolved", resolved_by="amy")
    items = [("Alert", first), ("Alert", second), ("Cancel", closed)]
    return {
        "group": {"key": "hazard=smoke", "labels": {"hazard": "smoke"}, "number": 2},
        "notifications": [
            {"msg_type": m, "idempotency_key": f"inc{v['id']}-v{v['version']}", "created_at": T0, "incident": v}
            for m, v in items
        ],
    }


def test_a_group_is_one_valid_cap_alert_with_an_info_per_incident(schema):  # noqa: F811
    key = group_idempotency_key("hazard=smoke", 2)
    earlier = group_reference("platform", group_idempotency_key("hazard=smoke", 1), T0 - 60, OPTS)
    body = render_group_cap(_payload(), created_at=T0, receiver="platform", idempotency_key=key,
                            references=[earlier], options=OPTS)
    schema.validate(body.decode())
    alert = ET.fromstring(body)
    assert alert.findtext("cap:msgType", namespaces=NS) == "Update"
    assert alert.findtext("cap:identifier", namespaces=NS) == group_identifier("platform", key)
    assert alert.findtext("cap:references", namespaces=NS) == str(earlier)
    assert alert.findtext("cap:incidents", namespaces=NS) == "hazardwatch-inc12 hazardwatch-inc13 hazardwatch-inc14"
    infos = alert.findall("cap:info", NS)
    assert [i.findtext("cap:responseType", namespaces=NS) for i in infos] == ["Monitor", "Avoid", "AllClear"]
    assert all(i.find("cap:area/cap:circle", NS) is not None for i in infos)
    again = render_group_cap(_payload(), created_at=T0, receiver="platform", idempotency_key=key,
                             references=[earlier], options=OPTS)
    assert again == body  # byte-identical on a retry
    first = render_group_cap(_payload(), created_at=T0, receiver="platform", idempotency_key=key, options=OPTS)
    assert ET.fromstring(first).findtext("cap:msgType", namespaces=NS) == "Alert"


def test_a_group_webhook_body_carries_every_change_in_order():
    doc = _payload()
    body = json.loads(render_group_body("group-abc-n2", T0, doc["group"], doc["notifications"]))
    assert body["msg_type"] == "Group" and body["idempotency_key"] == "group-abc-n2"
    assert [(n["msg_type"], n["incident"]["id"]) for n in body["notifications"]] == [
        ("Alert", 12), ("Alert", 13), ("Cancel", 14)
    ]
    with pytest.raises(ValueError, match="without incidents"):
        render_group_cap({"group": doc["group"], "notifications": []}, created_at=T0, receiver="p",
                         idempotency_key="k")
