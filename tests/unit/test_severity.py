"""Severity from the situation (issue 16.2): each fact moves the base one level and leaves a reason;
the confidence calibration table maps a vote score to a probability."""

from __future__ import annotations

import pytest

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.incidents.severity import Facts, assess
from hazardwatch.central.response_config import CameraImportance, ConfidenceConfig, SeverityRules

pytestmark = pytest.mark.quick
RULES = SeverityRules(cameras={"e1/dam": CameraImportance(importance="critical", watches="reservoir dam")})


def codes(reasons: list[dict]) -> list[str]:
    return [r["code"] for r in reasons]


def test_a_single_daytime_look_keeps_the_base_and_says_so():
    sev, reasons = assess(Facts("fire", "severe", ("e1/a",), 0.9, 1.0, (), 12), RULES)
    assert sev == "severe" and codes(reasons) == ["base"]
    assert reasons[0]["text"] == "fire starts at severe"


def test_each_fact_adds_its_level_and_reason():
    sev, reasons = assess(Facts("smoke", "moderate", ("e1/a", "e2/b"), 0.9, None, (), 12), RULES)
    assert sev == "severe" and codes(reasons) == ["base", "multi_camera"]
    sev, reasons = assess(Facts("smoke", "moderate", ("e1/a",), 0.9, 2.5, (), 12), RULES)
    assert sev == "severe" and reasons[-1] == {"code": "growth", "delta": 1, "factor": 2.5,
                                               "text": "region grew 2.5x since the first look"}
    sev, reasons = assess(Facts("smoke", "moderate", ("e1/a",), 0.9, 1.0, (), 23), RULES)
    assert sev == "severe" and reasons[-1]["code"] == "time" and "night" in reasons[-1]["text"]
    weather = (("e1/a", "high", "Rainstorm red warning"),)
    sev, reasons = assess(Facts("waterlogging", "moderate", ("e1/a",), 0.9, 1.0, weather, 12), RULES)
    assert sev == "severe" and reasons[-1]["reason"] == "Rainstorm red warning"
    sev, reasons = assess(Facts("waterlogging", "moderate", ("e1/dam",), 0.9, 1.0, (), 12), RULES)
    assert sev == "extreme" and reasons[-1]["watches"] == "reservoir dam" and reasons[-1]["delta"] == 2


def test_low_confidence_lowers_and_the_result_is_clamped():
    sev, reasons = assess(Facts("smoke", "minor", ("e1/a",), 0.3, 1.0, (), 12), RULES)
    assert sev == "minor" and codes(reasons) == ["base", "low_confidence"]
    facts = Facts("fire", "severe", ("e1/dam", "e1/b"), 0.9, 3.0, (("e1/dam", "high", "fire danger"),), 2)
    sev, reasons = assess(facts, RULES)
    assert sev == "extreme" and len(reasons) == 6  # base + five raises, clamped at extreme


def test_rules_are_configuration_with_clear_errors():
    cfg = CentralConfig.model_validate({"broker": None, "severity_rules": {"multi_camera": 0, "time_windows": []}})
    assert assess(Facts("smoke", "moderate", ("a/1", "b/2"), 0.9, 1.0, (), 23), cfg.severity_rules)[0] == "moderate"
    with pytest.raises(ValueError, match="edge_id/camera_id"):
        SeverityRules(cameras={"school": CameraImportance(importance="high")})
    with pytest.raises(ValueError, match="extra"):
        CentralConfig.model_validate({"broker": None, "severity_rules": {"multicamera": 1}})


def test_calibration_table_is_piecewise_linear():
    conf = ConfidenceConfig(calibration={"smoke-hpwren": [(0.5, 0.2), (0.8, 0.6), (1.0, 0.95)]})
    assert conf.calibrate("smoke-hpwren@1.1.0", 0.65) == (pytest.approx(0.4), True)
    assert conf.calibrate("smoke-hpwren", 0.3) == (0.2, True)
    assert conf.calibrate("red-patch", 0.67) == (0.67, False)
    with pytest.raises(ValueError, match="rise strictly"):
        ConfidenceConfig(calibration={"m": [(0.8, 0.5), (0.5, 0.9)]})
