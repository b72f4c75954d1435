"""Sliding-window vote over the last looks at one camera, hazard and zone (after Pyronear).

A candidate region in the newest look is confirmed when at least `min_votes` of the last `window`
looks have a region overlapping it, and the sum of their best overlapping scores divided by
`window` reaches the threshold (times `ongoing_factor` while an alert is already open, so an
ongoing fire does not flicker off on one weak frame).

A look's region counts at least `threshold`: every region already passed its model's own operating
threshold, and a model whose operating point sits under the vote's (the smoke model scored against a
camera's reference flags at 0.265) could otherwise never confirm a faint plume however long it stays.
A weak region is then confirmed once every look of the window has it, a strong one after `min_votes`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hazardwatch.edge.config import ConfirmConfig
from hazardwatch.edge.detect import Detection


@dataclass(frozen=True)
class Look:
    at: float
    detections: tuple[Detection, ...]


@dataclass(frozen=True)
class Confirmation:
    score: float
    boxes: tuple[Detection, ...]
    first_at: float
    last_at: float


class SlidingVote:
    def __init__(self, cfg: ConfirmConfig) -> None:
        self.cfg = cfg
        self.looks: deque[Look] = deque(maxlen=cfg.window)

    def add(self, at: float, detections: list[Detection], ongoing: bool) -> Confirmation | None:
        self.looks.append(Look(at, tuple(detections)))
        threshold = self.cfg.threshold * (self.cfg.ongoing_factor if ongoing else 1.0)
        confirmed: list[tuple[float, Detection, float]] = []
        for cand in detections:
            votes, total, first = 0, 0.0, at
            for look in self.looks:
                scores = [d.score for d in look.detections if d.overlaps(cand, self.cfg.min_iou)]
                if scores:
                    votes += 1
                    total += max(max(scores), self.cfg.threshold)
                    first = min(first, look.at)
            conf = total / self.cfg.window
            if votes >= self.cfg.min_votes and conf >= threshold:
                confirmed.append((conf, cand, first))
        if not confirmed:
            return None
        return Confirmation(
            score=min(1.0, max(c for c, _, _ in confirmed)),
            boxes=tuple(d for _, d, _ in confirmed),
            first_at=min(f for _, _, f in confirmed),
            last_at=at,
        )

    def has_recent_candidate(self) -> bool:
        return any(look.detections for look in self.looks)
