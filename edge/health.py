"""Camera health as the edge sees it: online, degraded (failing, or delivering frames it cannot see
with) or offline.

State changes are returned to the caller, which publishes them retained on the camera's status
topic; the status changes within `offline_after_s` of the last good frame. A frame's diagnosis
(edge/diagnose) makes a delivering camera degraded ("covered (0.93)") or adds information to an
online one ("night-ir"); a change in *which* diagnoses hold is news, a new confidence is not, and so is
a change in how far the camera has learnt its normal (`normal`, from the predictor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hazardwatch.contract import CameraState, Hazard
from hazardwatch.contract.messages import NormalPhase
from hazardwatch.edge.diagnose import Diagnosis


@dataclass(frozen=True)
class HealthChange:
    camera_id: str
    state: CameraState
    reason: str
    since: float
    last_frame_at: float | None
    diagnoses: dict[str, float] = field(default_factory=dict)
    night: bool = False
    normal: dict[Hazard, NormalPhase] = field(default_factory=dict)


@dataclass
class CameraHealth:
    camera_id: str
    offline_after_s: float
    started_at: float
    state: CameraState | None = None  # None until the first look or failure
    reason: str = "starting"
    since: float = 0.0
    last_frame_at: float | None = None
    frames: int = 0
    failures: int = 0
    diagnosis: Diagnosis = field(default_factory=Diagnosis)
    normal: dict[Hazard, NormalPhase] = field(default_factory=dict)  # as last sent

    def on_frame(self, frame_at: float, now: float, diagnosis: Diagnosis | None = None) -> HealthChange | None:
        self.last_frame_at = frame_at
        self.frames += 1
        previous = self.diagnosis.names
        self.diagnosis = diagnosis or Diagnosis()
        state = CameraState.DEGRADED if self.diagnosis.degraded else CameraState.ONLINE
        return self._set(state, self.diagnosis.reason(), now, force=self.diagnosis.names != previous)

    def on_failure(self, reason: str, now: float) -> HealthChange | None:
        self.failures += 1
        self.diagnosis = Diagnosis()
        seen = self.last_frame_at if self.last_frame_at is not None else self.started_at
        if now - seen >= self.offline_after_s or self.last_frame_at is None:
            return self._set(CameraState.OFFLINE, reason, now)
        return self._set(CameraState.DEGRADED, f"retrying: {reason}", now)

    def check(self, now: float, expect_frames: bool) -> HealthChange | None:
        """Periodic check: a camera that should be delivering and has not for too long is offline."""
        if not expect_frames:
            return None
        seen = self.last_frame_at if self.last_frame_at is not None else self.started_at
        if now - seen >= self.offline_after_s and self.state != CameraState.OFFLINE:
            return self._set(CameraState.OFFLINE, f"no frame for {now - seen:.0f} s", now)
        return None

    def on_normal(self, normal: Mapping[Hazard, NormalPhase]) -> HealthChange | None:
        """How far the camera has learnt its normal, per hazard looked at: news when a phase changes (a few
        times per camera and view, not every look), sent with the state as it stands (its `since` kept)."""
        merged = {**self.normal, **normal}
        if merged == self.normal or self.state is None:
            return None
        self.normal = merged
        return self._change()

    def _set(self, state: CameraState, reason: str, now: float, force: bool = False) -> HealthChange | None:
        # State changes are news, and so is a different set of diagnoses; a new reason text alone
        # (a retry's error message, a confidence) is not, so the topic does not flap.
        if state == self.state and not force:
            return None
        self.state, self.reason, self.since = state, reason, now
        return self._change()

    def _change(self) -> HealthChange:
        assert self.state is not None
        return HealthChange(
            self.camera_id,
            self.state,
            self.reason,
            self.since,
            self.last_frame_at,
            self.diagnosis.all_confidences(),
            self.diagnosis.night,
            dict(self.normal),
        )
