"""Configuration of how central judges and answers an incident: false-alarm suppression, severity rules,
response procedures and contacts. Kept apart from `config.py` (connections, timers) because the duty
officer's bureau tunes these, not the operator of the machines. Rules are described in docs/central.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Level = Literal["minor", "moderate", "severe", "extreme"]
LEVELS: tuple[str, ...] = ("minor", "moderate", "severe", "extreme")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FalseAlarmConfig(_Strict):
    """What "false alarm" silences: the same camera, hazard and image region, for a limited time.

    A detection in that region stays quiet (recorded, counted, visible) unless it is clearly stronger:
    its score exceeds the false alarm's best by `break_score_margin`, or its region is `break_area_factor`
    times the false alarm's largest region.
    """

    suppress_s: float = Field(default=2 * 3600, ge=0, le=7 * 86400, description="Default suppression; 0: none")
    max_suppress_s: float = Field(default=24 * 3600, gt=0, le=30 * 86400, description="Longest an operator may ask")
    break_score_margin: float = Field(default=0.15, gt=0, le=1, description="Score rise that breaks through")
    break_area_factor: float = Field(default=2.0, gt=1, le=100, description="Region growth that breaks through")

    @model_validator(mode="after")
    def _bounds(self) -> FalseAlarmConfig:
        if self.suppress_s > self.max_suppress_s:
            raise ValueError(f"suppress_s ({self.suppress_s}) exceeds max_suppress_s ({self.max_suppress_s})")
        return self
