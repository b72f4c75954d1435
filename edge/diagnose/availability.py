"""Daily availability per camera: seconds online, degraded and offline per UTC day.

Why a small JSON state file beside the outbox rather than the outbox database: it is bookkeeping
of the edge itself, rewritten whole every minute (atomic rename), and must never contend with the
outbox's write lock that guards alerts. Only time the edge observed counts; time the edge itself
was down is in no bucket (the ratio is online / observed).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

STATES = ("online", "degraded", "offline")


def utc_day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")


class AvailabilityLog:
    """Accumulates per camera, per UTC day, the seconds spent in each state."""

    def __init__(self, path: Path, keep_days: int = 31) -> None:
        self.path = Path(path)
        self.keep_days = keep_days
        self._days: dict[str, dict[str, dict[str, float]]] = {}  # camera -> day -> state -> s
        self._last: dict[str, float] = {}
        self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
            self._days = {
                str(cam): {str(d): {s: float(v.get(s, 0.0)) for s in STATES} for d, v in days.items()}
                for cam, days in doc.get("cameras", {}).items()
            }
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("availability file %s unreadable, starting afresh: %s", self.path, exc)

    def tick(self, camera_id: str, state: str | None, now: float) -> float:
        """Credit the time since this camera's last tick to `state`; return the seconds credited."""
        last = self._last.get(camera_id)
        self._last[camera_id] = now
        if last is None or state not in STATES or now <= last:
            return 0.0
        elapsed = min(now - last, 60.0)  # a stalled loop does not invent hours of one state
        start = last
        while elapsed > 0:  # split at UTC midnight
            day = utc_day(start)
            midnight = (dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC) + dt.timedelta(days=1)).timestamp()
            part = min(elapsed, midnight - start)
            bucket = self._days.setdefault(camera_id, {}).setdefault(day, dict.fromkeys(STATES, 0.0))
            bucket[state] += part
            elapsed -= part
            start += part
        return min(now - last, 60.0)

    def day(self, camera_id: str, day: str) -> dict[str, float | str | None]:
        b = self._days.get(camera_id, {}).get(day, dict.fromkeys(STATES, 0.0))
        observed = sum(b.values())
        return {
            "date": day,
            **{f"{s}_s": round(b[s], 1) for s in STATES},
            "availability": round(b["online"] / observed, 4) if observed > 0 else None,
        }

    def recent(self, camera_id: str, days: int = 7) -> list[dict[str, float | str | None]]:
        known = sorted(self._days.get(camera_id, {}), reverse=True)[:days]
        return [self.day(camera_id, d) for d in known]

    def save(self) -> None:
        """Drop days past `keep_days` and write atomically."""
        for days in self._days.values():
            for d in sorted(days)[: max(0, len(days) - self.keep_days)]:
                del days[d]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": 1, "cameras": self._days}, sort_keys=True))
            tmp.replace(self.path)
        except OSError as exc:  # a full disk must not leave a half file eating the last space
            tmp.unlink(missing_ok=True)
            log.warning("availability file %s not written: %s", self.path, exc)
