"""Model registry and the rollout driver on a real (SQLite) store: versions are checked and immutable,
the canary goes first, the wave only after the canary is healthy, and a failing canary stops it."""

from __future__ import annotations

import hashlib
import json

import pytest

from hazardwatch.central.services import comparisons, registry
from hazardwatch.central.services.errors import Conflict, Invalid, NotFound
from hazardwatch.central.store import Database
from hazardwatch.contract import ModelStatus, parse_message

pytestmark = pytest.mark.quick


@pytest.fixture
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'c.db'}")
    d.migrate()
    yield d
    d.close()


def manifest(data: bytes, version: str = "2.0.0", **kw) -> bytes:
    doc = {
        "name": "red-patch",
        "version": version,
        "hazard": "fire",
        "file": "red-patch.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "input": {"width": 320, "height": 240},
        "output": {"kind": "tile_scores", "classes": ["red"], "hazard_classes": ["red"]},
        "threshold": 0.6,
        "metrics": {"f1": 0.9},
    }
    doc.update(kw)
    return json.dumps(doc).encode()


def status(edge: str, rid: int, state: str, version: str = "2.0.0", at: float = 10.0) -> ModelStatus:
    return ModelStatus(
        edge_id=edge,
        sent_at=at,
        hazard="fire",
        rollout_id=f"rollout-{rid}",
        state=state,
        model_name="red-patch",
        model_version=version,
        target_version="2.0.0",
    )


def test_register_checks_the_file_and_versions_are_immutable(db):
    data = b"onnx-bytes"
    with db.tx() as tx:
        m = registry.register(tx, manifest(data), data, "root", "first", 1.0)
        assert (m["name"], m["version"], m["registered_by"], m["metrics"]) == (
            "red-patch",
            "2.0.0",
            "root",
            {"f1": 0.9},
        )
        with pytest.raises(Conflict, match="already registered"):
            registry.register(tx, manifest(data), data, "root", "", 2.0)
        with pytest.raises(Invalid, match="sha256"):
            registry.register(tx, manifest(b"other", version="3"), data, "root", "", 2.0)
        with pytest.raises(Invalid, match="manifest"):
            registry.register(tx, b'{"name": "x"}', data, "root", "", 2.0)
        assert registry.model_file(tx, "red-patch", "2.0.0") == ("red-patch.onnx", data)
        assert registry.threshold_for(tx, "fire") == 0.6


def test_canary_first_then_wave_and_commands_are_valid_contract_messages(db):
    data = b"onnx-bytes"
    with db.tx() as tx:
        registry.register(tx, manifest(data), data, "root", "", 1.0)
        ro = registry.create_rollout(tx, "red-patch", "2.0.0", ["e1", "e2", "e3"], "e2", "root", 1.0)
        assert ro["canary"] == "e2" and ro["state"] == "canary"
        sends = registry.advance(tx, 2.0)
    assert [s.edge_id for s in sends] == ["e2"]
    cmd = parse_message(sends[0].payload)
    assert cmd.kind == "rollout" and cmd.sha256 == hashlib.sha256(data).hexdigest() and cmd.size == len(data)
    with db.tx() as tx:
        assert registry.advance(tx, 3.0) == []  # not resent before RESEND_AFTER_S
        assert [s.edge_id for s in registry.advance(tx, 3.0 + registry.RESEND_AFTER_S + 1)] == ["e2"]
        registry.apply_model_status(tx, status("e2", ro["id"], "downloading"), 40.0)
        registry.apply_model_status(tx, status("e2", ro["id"], "active"), 41.0)
        assert registry.advance(tx, 42.0) == []  # promotes to rolling
        assert registry.get_rollout(tx, ro["id"])["state"] == "rolling"
        assert sorted(s.edge_id for s in registry.advance(tx, 43.0)) == ["e1", "e3"]
        registry.apply_model_status(tx, status("e1", ro["id"], "active"), 44.0)
        registry.apply_model_status(tx, status("e3", ro["id"], "rolled_back", version="1.0.0"), 44.0)
        registry.advance(tx, 45.0)
        view = registry.get_rollout(tx, ro["id"])
        # a later report cannot move a finished edge back
        registry.apply_model_status(tx, status("e3", ro["id"], "downloading", version="1.0.0"), 46.0)
        assert registry.get_rollout(tx, ro["id"])["edges"] == view["edges"]
        models = {(e["edge_id"], e["model_version"]) for e in registry.edge_models(tx)}
    assert view["state"] == "failed" and "e3" in view["detail"]
    by_edge = {e["edge_id"]: e for e in view["edges"]}
    assert by_edge["e3"]["running_version"] == "1.0.0" and by_edge["e1"]["running_version"] == "2.0.0"
    assert models == {("e1", "2.0.0"), ("e2", "2.0.0"), ("e3", "1.0.0")}


def test_failing_canary_stops_the_rollout_and_silent_edges_time_out(db):
    data = b"onnx-bytes"
    with db.tx() as tx:
        registry.register(tx, manifest(data), data, "root", "", 1.0)
        ro = registry.create_rollout(tx, "red-patch", "2.0.0", ["e1", "e2"], None, "root", 1.0)
        registry.advance(tx, 2.0)
        with pytest.raises(Conflict, match="in another"):  # one rollout per edge and hazard at a time
            registry.create_rollout(tx, "red-patch", "2.0.0", ["e1"], None, "root", 2.0)
        registry.apply_model_status(tx, status("e1", ro["id"], "failed", version="1.0.0"), 3.0)
        assert registry.advance(tx, 4.0) == []
        view = registry.get_rollout(tx, ro["id"])
        assert view["state"] == "failed" and "not touched" in view["detail"]
        assert {e["edge_id"]: e["sends"] for e in view["edges"]} == {"e1": 1, "e2": 0}
        ro2 = registry.create_rollout(tx, "red-patch", "2.0.0", ["e1"], None, "root", 10.0)
        registry.advance(tx, 10.0)
        registry.advance(tx, 10.0 + registry.EDGE_TIMEOUT_S + 1)
        registry.advance(tx, 10.0 + registry.EDGE_TIMEOUT_S + 2)
        view = registry.get_rollout(tx, ro2["id"])
    assert view["state"] == "failed" and "no report" in view["edges"][0]["detail"]


def comparison(candidate: str, tp: int, fp: int) -> bytes:
    """The object `hazardwatch models compare --json` prints (running: 8 of 10 caught, 1 false alarm)."""

    def run(model: str, tp: int, fp: int) -> dict:
        fn, tn = 10 - tp, 10 - fp
        p, r = tp / max(1, tp + fp), tp / 10
        return {
            "model": model,
            "threshold": 0.6,
            "n_pos": 10,
            "n_neg": 10,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "precision": round(p, 4),
            "recall": r,
            "f1": round(2 * p * r / max(1e-9, p + r), 4),
            "ms_per_image": 3.1,
        }

    changes = {
        "caught": [],
        "missed": [f"smoke/f{i}.jpg" for i in range(max(0, 8 - tp))],
        "new_false_alarms": [],
        "false_alarms_gone": [],
    }
    return json.dumps(
        {"running": run("red-patch 1.0.0", 8, 1), "candidate": run(candidate, tp, fp), "delta": {}, "changes": changes}
    ).encode()


def test_a_comparison_is_kept_with_its_candidate_and_says_what_a_rollout_changes(db):
    data = b"onnx-bytes"
    with db.tx() as tx:
        registry.register(tx, manifest(data), data, "root", "", 1.0)
        assert registry.get_version(tx, "red-patch", "2.0.0")["comparison"] is None
        view = comparisons.attach(tx, "red-patch", "2.0.0", comparison("red-patch 2.0.0", 6, 0), "root", 2.0)
    assert view["summary"] == {
        "labelled": 20,
        "caught": -2,
        "false_alarms": -1,
        "catches_fewer": True,
        "more_false_alarms": False,
    }
    assert view["changed"]["missed"] == 2 and view["compared_by"] == "root"
    with db.tx() as tx:
        (listed,) = registry.list_versions(tx)
        assert listed["comparison"]["summary"]["catches_fewer"] is True
        assert listed["comparison"]["candidate"]["tp"] == 6
        # a rerun on a grown labelled set replaces it
        comparisons.attach(tx, "red-patch", "2.0.0", comparison("red-patch 2.0.0", 9, 1), "root", 3.0)
        again = registry.get_version(tx, "red-patch", "2.0.0")["comparison"]
        assert again["summary"]["catches_fewer"] is False and again["compared_at"] == 3.0
    with db.tx() as tx, pytest.raises(Invalid, match=r"candidate\.model is 'red-patch 1\.0\.0', not this version"):
        comparisons.attach(tx, "red-patch", "2.0.0", comparison("red-patch 1.0.0", 9, 1), "root", 4.0)
    with db.tx() as tx, pytest.raises(Invalid, match="comparison: running: Field required"):
        comparisons.attach(tx, "red-patch", "2.0.0", b'{"candidate": {}}', "root", 4.0)
    with db.tx() as tx, pytest.raises(NotFound):
        comparisons.attach(tx, "red-patch", "9.9.9", comparison("red-patch 9.9.9", 9, 1), "root", 4.0)
