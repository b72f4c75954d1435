"""Patrol scheduler: most overdue first, shared looks, bursts, risk levels and backoff."""

from __future__ import annotations

import random

import pytest

from hazardwatch.contract import Hazard, RiskLevel
from hazardwatch.edge.config import BackoffConfig, CameraConfig, PatrolConfig
from hazardwatch.edge.patrol.scheduler import PatrolScheduler

pytestmark = pytest.mark.quick


def cam(cid: str, **hazards) -> CameraConfig:
    return CameraConfig(id=cid, source="rtsp://x/y", hazards=hazards or {"smoke": {}})


def sched(cameras, **kw) -> PatrolScheduler:
    kw.setdefault("phase_jitter_s", 0)
    cfg = PatrolConfig(**kw)
    return PatrolScheduler(cameras, cfg, now=0.0, rng=random.Random(1))


def test_everything_due_at_start_then_at_interval():
    s = sched([cam("a"), cam("b")], intervals_s={"smoke": 30})
    visits = s.due(0.0, limit=10)
    assert {v.camera_id for v in visits} == {"a", "b"}
    assert s.due(0.0, limit=10) == []  # in flight
    for v in visits:
        s.finish(v.camera_id, v.hazards, (), now=1.0)
    assert s.due(30.0, 10) == []
    assert {v.camera_id for v in s.due(31.0, 10)} == {"a", "b"}


def test_most_overdue_first_and_limit():
    s = sched([cam("a"), cam("b"), cam("c")], intervals_s={"smoke": 10})
    for v in s.due(0.0, 10):
        s.finish(v.camera_id, v.hazards, (), now={"a": 5.0, "b": 1.0, "c": 3.0}[v.camera_id])
    order = [v.camera_id for v in s.due(20.0, 2)]
    assert order == ["b", "c"]


def test_hazards_due_soon_share_one_look():
    s = sched([cam("a", smoke={"interval_s": 30}, waterlogging={"interval_s": 100})])
    v = s.due(0.0, 1)[0]
    assert v.hazards == {Hazard.SMOKE, Hazard.WATERLOGGING}
    s.finish("a", v.hazards, (), 0.0)
    v = s.due(30.0, 1)[0]
    assert v.hazards == {Hazard.SMOKE}  # waterlogging is 70 s away: more than 25 % of its interval
    s.finish("a", v.hazards, (), 30.0)
    v = s.due(90.0, 1)[0]
    assert v.hazards == {Hazard.SMOKE, Hazard.WATERLOGGING}  # due at 100, within 25 s


def test_candidate_bursts_until_dropped():
    s = sched([cam("a")], intervals_s={"smoke": 30}, burst_interval_s=2)
    v = s.due(0.0, 1)[0]
    s.finish("a", v.hazards, {Hazard.SMOKE}, 0.0)
    assert s.interval("a", Hazard.SMOKE, 0.0) == 2
    assert s.due(2.0, 1)
    s.finish("a", {Hazard.SMOKE}, (), 2.0)
    assert s.interval("a", Hazard.SMOKE, 2.0) == 30


def test_risk_level_shortens_interval_now_and_expires():
    s = sched([cam("a"), cam("b")], intervals_s={"smoke": 40})
    for v in s.due(0.0, 10):
        s.finish(v.camera_id, v.hazards, (), 0.0)
    changed = s.set_risk(Hazard.SMOKE, RiskLevel.HIGH, ["a", "zzz"], until=100.0, reason="red flag", now=1.0)
    assert changed == ["a"]
    assert s.interval("a", Hazard.SMOKE, 1.0) == 10
    assert [v.camera_id for v in s.due(10.0, 10)] == ["a"]  # not waiting for the old 40 s
    assert s.interval("a", Hazard.SMOKE, 100.0) == 40  # expired
    assert s.risk("a", Hazard.SMOKE, 100.0) is None
    # a hazard the camera does not watch is ignored
    assert s.set_risk(Hazard.WATERLOGGING, RiskLevel.HIGH, None, None, "rain", 1.0) == []


def test_failures_back_off_exponentially_with_jitter_and_reset():
    s = sched([cam("a"), cam("b")], backoff=BackoffConfig(initial_s=1, max_s=8, jitter=0.2))
    delays = []
    now = 0.0
    for _ in range(6):
        visits = {v.camera_id: v for v in s.due(now, 10)}
        assert "a" in visits
        delays.append(s.fail("a", now))
        if "b" in visits:
            s.finish("b", visits["b"].hazards, (), now)
        now += delays[-1] + 0.001
    for k, d in enumerate(delays):
        expected = min(8, 2**k)
        assert expected * 0.8 <= d <= expected * 1.2
    v = s.due(now, 10)[0]
    s.finish("a", v.hazards, (), now)
    assert s.fail("a", now) <= 1.2


def test_a_camera_down_for_days_keeps_its_capped_backoff():
    """Thousands of failures in a row (a camera dead for a day at max_s 60) still give a finite delay."""
    s = sched([cam("a")], backoff=BackoffConfig(initial_s=1, max_s=60, jitter=0.2))
    now = 0.0
    for _ in range(1100):
        (visit,) = s.due(now, 10)
        delay = s.fail(visit.camera_id, now)
        now += delay + 0.001
    assert 48 <= delay <= 72 and s.due(now - 1, 10) == []


def test_phase_jitter_spreads_next_looks():
    s = sched([cam(str(k)) for k in range(50)], intervals_s={"smoke": 30}, phase_jitter_s=0.5)
    for v in s.due(0.0, 100):
        s.finish(v.camera_id, v.hazards, (), 0.0)
    due = [s._plans[str(k)].next_due[Hazard.SMOKE] for k in range(50)]
    assert all(30 <= d <= 30.5 for d in due) and len(set(due)) > 40
