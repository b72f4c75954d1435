"""Calibration tables for the one confidence the officer sees (`confidence.calibration`), measured on the
bureau's own outcomes: an alert of an incident an operator resolved was a real hazard, one of a false
alarm was not; incidents the system closed by itself say nothing and are left out.

Each alert counts once, with the highest vote score it reached. Pool-adjacent-violators (isotonic
regression) turns (score, outcome) pairs into a non-decreasing probability, written as the
[score, probability] points the config reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hazardwatch.central.store import Tx


@dataclass
class ModelOutcomes:
    model: str
    pairs: list[tuple[float, int]] = field(default_factory=list)  # (vote score, 1 real / 0 false alarm)

    @property
    def real(self) -> int:
        return sum(y for _s, y in self.pairs)

    @property
    def false(self) -> int:
        return len(self.pairs) - self.real


def isotonic(pairs: list[tuple[float, int]]) -> list[tuple[float, float]]:
    """Non-decreasing P(real | score) by pool-adjacent-violators; one point per pooled block (its mean
    score, its share of real outcomes), rounded for the config file."""
    blocks: list[list[float]] = []  # [sum of scores, sum of outcomes, count]
    for score, real in sorted(pairs):
        blocks.append([score, float(real), 1.0])
        # merge violators, and equal neighbours too (fewer points, same curve)
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            s, y, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += y
            blocks[-1][2] += n
    points: list[tuple[float, float]] = []
    for s, y, n in blocks:
        x = round(s / n, 4)
        if points and x <= points[-1][0]:
            continue  # two pools at one rounded score: keep the first (the table's scores must rise)
        points.append((x, round(y / n, 4)))
    return points


def outcomes(tx: Tx, since: float | None = None) -> dict[str, ModelOutcomes]:
    rows = tx.execute(
        "SELECT ae.model, ae.edge_id, ae.alert_id, MAX(ae.score), i.state FROM alert_events ae "
        "JOIN incidents i ON i.id = ae.incident_id WHERE i.state IN ('resolved', 'false_alarm') "
        "AND i.resolved_by IS NOT NULL AND i.resolved_by <> 'system' AND i.resolved_at >= ? "
        "AND ae.state <> 'end' GROUP BY ae.model, ae.edge_id, ae.alert_id, i.state",
        (since if since is not None else 0.0,),
    )
    found: dict[str, ModelOutcomes] = {}
    for model, _edge, _alert, score, state in rows:
        name = str(model).split("@", 1)[0]
        found.setdefault(name, ModelOutcomes(name)).pairs.append((float(score), 1 if state == "resolved" else 0))
    return found


def calibrate(tx: Tx, since: float | None = None, min_alerts: int = 30) -> dict[str, Any]:
    """The `confidence.calibration` tables that enough outcomes support, and why others were left out."""
    tables: dict[str, list[list[float]]] = {}
    skipped: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for name, o in sorted(outcomes(tx, since).items()):
        counts[name] = {"real": o.real, "false_alarm": o.false}
        if len(o.pairs) < min_alerts:
            skipped[name] = f"{len(o.pairs)} alerts with an operator's verdict, fewer than {min_alerts}"
        elif not o.real or not o.false:
            skipped[name] = "only one kind of outcome (all real or all false alarms): nothing to calibrate against"
        else:
            points = isotonic(o.pairs)
            if len(points) < 2:
                points = [(0.0, points[0][1]), (1.0, points[0][1])]  # flat: the score says nothing yet
            tables[name] = [list(p) for p in points]
    return {"measured_at": time.time(), "calibration": tables, "outcomes": counts, "skipped": skipped}
