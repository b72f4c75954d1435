"""The patrol scheduler: a pure, clock-free decision of which camera to look at next.

Every camera and hazard has a revisit interval (the patrol default or the camera's own, times the
current risk factor). The most overdue camera goes first; one look serves every hazard of that
camera that is due soon, so a frame is decoded once. A candidate detection switches that hazard
to the burst cadence until the predictor confirms or drops it. A failing camera is retried with
exponential backoff and jitter and never holds up the others.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hazardwatch.contract import Hazard, RiskLevel
from hazardwatch.edge.config import CameraConfig, PatrolConfig

# A hazard due within this share of its interval rides along with a look taken for another hazard.
SHARE_SLACK = 0.25


@dataclass(frozen=True)
class Visit:
    camera_id: str
    hazards: frozenset[Hazard]
    overdue_s: float


@dataclass(frozen=True)
class RiskOverride:
    level: RiskLevel
    until: float | None
    reason: str


@dataclass
class _CameraPlan:
    camera_id: str
    base_interval: dict[Hazard, float]
    next_due: dict[Hazard, float]
    last_look: dict[Hazard, float] = field(default_factory=dict)
    burst: set[Hazard] = field(default_factory=set)
    in_flight: bool = False
    failures: int = 0
    retry_at: float = 0.0


class PatrolScheduler:
    def __init__(
        self, cameras: Sequence[CameraConfig], cfg: PatrolConfig, now: float, rng: random.Random | None = None
    ) -> None:
        self.cfg = cfg
        self._rng = rng or random.Random()
        self._plans: dict[str, _CameraPlan] = {}
        self._risk: dict[tuple[str, Hazard], RiskOverride] = {}
        for cam in cameras:
            if not cam.enabled:
                continue
            base = {h: s.interval_s or cfg.intervals_s.get(h, 60.0) for h, s in cam.hazards.items() if s.enabled}
            if base:
                # Everything is due at start-up: the first look tells whether the camera works.
                self._plans[cam.id] = _CameraPlan(cam.id, base, dict.fromkeys(base, now))

    @property
    def camera_ids(self) -> list[str]:
        return list(self._plans)

    # -- risk -------------------------------------------------------------------------------------
    def set_risk(
        self,
        hazard: Hazard,
        level: RiskLevel,
        cameras: Iterable[str] | None,
        until: float | None,
        reason: str,
        now: float,
    ) -> list[str]:
        """Apply a risk level; return the cameras it applied to (those that watch the hazard)."""
        targets = list(self._plans) if cameras is None else [c for c in cameras if c in self._plans]
        changed = []
        for cam_id in targets:
            plan = self._plans[cam_id]
            if hazard not in plan.base_interval:
                continue
            if level == RiskLevel.NORMAL:
                self._risk.pop((cam_id, hazard), None)
            else:
                self._risk[(cam_id, hazard)] = RiskOverride(level, until, reason)
            # A shorter interval takes effect now, not after the old, longer wait.
            last = plan.last_look.get(hazard)
            if last is not None:
                plan.next_due[hazard] = min(plan.next_due[hazard], last + self.interval(cam_id, hazard, now))
            changed.append(cam_id)
        return changed

    def risk(self, camera_id: str, hazard: Hazard, now: float) -> RiskOverride | None:
        override = self._risk.get((camera_id, hazard))
        if override and override.until is not None and now >= override.until:
            del self._risk[(camera_id, hazard)]
            return None
        return override

    def interval(self, camera_id: str, hazard: Hazard, now: float) -> float:
        plan = self._plans[camera_id]
        if hazard in plan.burst:
            return min(self.cfg.burst_interval_s, plan.base_interval[hazard])
        override = self.risk(camera_id, hazard, now)
        level = override.level if override else RiskLevel.NORMAL
        return plan.base_interval[hazard] * self.cfg.risk_factors[level]

    # -- the patrol -------------------------------------------------------------------------------
    def due(self, now: float, limit: int) -> list[Visit]:
        """Up to `limit` visits to start now, most overdue first; marks them in flight."""
        ready = []
        for plan in self._plans.values():
            if plan.in_flight or plan.retry_at > now:
                continue
            earliest = min(plan.next_due.values())
            if earliest <= now:
                ready.append((now - earliest, plan))
        ready.sort(key=lambda item: item[0], reverse=True)
        visits = []
        for overdue, plan in ready[:limit]:
            hazards = frozenset(
                h
                for h, due in plan.next_due.items()
                if due <= now + SHARE_SLACK * self.interval(plan.camera_id, h, now)
            )
            plan.in_flight = True
            visits.append(Visit(plan.camera_id, hazards, overdue))
        return visits

    def next_wakeup(self, now: float) -> float:
        """Earliest time a camera that is not in flight becomes due (now + 1 s when idle)."""
        times = [max(plan.retry_at, min(plan.next_due.values())) for plan in self._plans.values() if not plan.in_flight]
        return min(times, default=now + 1.0)

    def finish(self, camera_id: str, hazards: Iterable[Hazard], candidates: Iterable[Hazard], now: float) -> None:
        """A look succeeded; schedule the next one per hazard (burst for candidates)."""
        plan = self._plans[camera_id]
        plan.in_flight = False
        plan.failures = 0
        plan.retry_at = 0.0
        plan.burst = set(candidates) & set(plan.base_interval)
        jitter = self._rng.uniform(0, self.cfg.phase_jitter_s) if not plan.burst else 0.0
        for hazard in hazards:
            plan.last_look[hazard] = now
            plan.next_due[hazard] = now + self.interval(camera_id, hazard, now) + jitter

    def fail(self, camera_id: str, now: float) -> float:
        """A look failed; return the backoff delay before this camera is tried again."""
        plan = self._plans[camera_id]
        plan.in_flight = False
        plan.failures += 1
        b = self.cfg.backoff
        delay = min(b.max_s, b.initial_s * 2 ** min(plan.failures - 1, 62))  # no float overflow after days down
        delay *= 1 + self._rng.uniform(-b.jitter, b.jitter)
        plan.retry_at = now + delay
        return delay

    def intervals(self, now: float) -> dict[tuple[str, Hazard], float]:
        """Current revisit interval of every camera and hazard (for metrics and the API)."""
        return {(c, h): self.interval(c, h, now) for c, plan in self._plans.items() for h in plan.base_interval}

    def risk_overrides(self, now: float) -> dict[tuple[str, Hazard], RiskOverride]:
        return {k: v for k in list(self._risk) if (v := self.risk(k[0], k[1], now)) is not None}
