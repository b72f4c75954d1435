"""Alert lifecycle for one camera, hazard and zone: new -> update* -> end.

`update` is sent for a meaningfully higher score, a region not seen before, or, at most every
`still_seen_s`, to say the hazard is still confirmed (central brings back an incident an operator closed
while the hazard is still there); a steady plume thus sends about one message per patrol interval, not
one per look of a fast camera. `end` follows a clear period of `end_after_s`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hazardwatch.contract import AlertState
from hazardwatch.edge.config import ConfirmConfig
from hazardwatch.edge.confirm.vote import Confirmation
from hazardwatch.edge.detect import Detection


@dataclass(frozen=True)
class LifecycleEvent:
    alert_id: str
    state: AlertState
    score: float
    boxes: tuple[Detection, ...]
    first_frame_at: float
    last_frame_at: float


@dataclass
class _Open:
    alert_id: str
    first_frame_at: float
    last_confirmed_at: float
    sent_score: float
    peak_score: float
    sent_at: float
    sent_boxes: list[Detection] = field(default_factory=list)


class AlertLifecycle:
    def __init__(self, cfg: ConfirmConfig) -> None:
        self.cfg = cfg
        self._open: _Open | None = None

    @property
    def ongoing(self) -> bool:
        return self._open is not None

    def observe(self, at: float, confirmation: Confirmation | None) -> LifecycleEvent | None:
        if confirmation is None:
            return self.expire(at)
        current = self._open
        if current is None:
            self._open = _Open(
                alert_id=uuid.uuid4().hex,
                first_frame_at=confirmation.first_at,
                last_confirmed_at=at,
                sent_score=confirmation.score,
                peak_score=confirmation.score,
                sent_at=at,
                sent_boxes=list(confirmation.boxes),
            )
            return self._event(AlertState.NEW, confirmation.score, confirmation.boxes, at)
        current.last_confirmed_at = at
        current.peak_score = max(current.peak_score, confirmation.score)
        new_region = any(
            not any(b.overlaps(s, self.cfg.min_iou) for s in current.sent_boxes) for b in confirmation.boxes
        )
        still_seen = at - current.sent_at >= self.cfg.still_seen_s
        if confirmation.score >= current.sent_score + self.cfg.update_score_delta or new_region or still_seen:
            current.sent_score = confirmation.score
            current.sent_at = at
            fresh = [
                b for b in confirmation.boxes if not any(b.overlaps(s, self.cfg.min_iou) for s in current.sent_boxes)
            ]
            current.sent_boxes.extend(fresh)  # only new regions: a long alert's list stays small
            return self._event(AlertState.UPDATE, confirmation.score, confirmation.boxes, at)
        return None

    def expire(self, now: float) -> LifecycleEvent | None:
        """End the open alert once nothing confirmed it for `end_after_s`."""
        current = self._open
        if current is None or now - current.last_confirmed_at < self.cfg.end_after_s:
            return None
        event = self._event(AlertState.END, current.peak_score, (), current.last_confirmed_at)
        self._open = None
        return event

    def _event(self, state: AlertState, score: float, boxes: tuple[Detection, ...], last_at: float) -> LifecycleEvent:
        assert self._open is not None
        return LifecycleEvent(self._open.alert_id, state, score, boxes, self._open.first_frame_at, last_at)
