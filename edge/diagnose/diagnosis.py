"""What a camera's diagnosis says after one look: the diagnoses in effect and how they read in a status."""

from __future__ import annotations

from dataclasses import dataclass, field

# Degraded diagnoses in the order they are named in a status reason (most fundamental first).
DEGRADED = ("black", "overexposed", "blank", "covered", "blurred", "view_shifted", "frozen")
# Informational diagnoses: reported, but the camera stays online.
INFO = ("night_ir", "fog")
ALL = DEGRADED + INFO
_LABELS = {"view_shifted": "view shifted", "night_ir": "night-ir"}
_NO_CONFIDENCE_IN_REASON = frozenset({"black", "overexposed", "blank", "frozen", "night_ir"})


@dataclass(frozen=True)
class Diagnosis:
    """The diagnoses in effect after one look (immutable: safe to read from another thread)."""

    active: dict[str, float] = field(default_factory=dict)  # degraded diagnoses -> confidence
    info: dict[str, float] = field(default_factory=dict)  # night_ir / fog -> confidence
    raw: dict[str, float] = field(default_factory=dict)  # this look's confidence of every diagnosis
    looks: int = 0
    cpu_s: float = 0.0

    @property
    def degraded(self) -> bool:
        return bool(self.active)

    @property
    def night(self) -> bool:
        return "night_ir" in self.info

    @property
    def names(self) -> frozenset[str]:
        """What a status change is about: a new confidence alone is not news."""
        return frozenset(self.active) | frozenset(self.info)

    def reason(self) -> str:
        """'covered (0.93); frozen' for a degraded camera, 'night-ir' or 'fog (0.71)' for an online one."""
        found = self.active if self.active else self.info
        order = DEGRADED if self.active else INFO
        parts = []
        for name in order:
            if name in found:
                label = _LABELS.get(name, name)
                parts.append(label if name in _NO_CONFIDENCE_IN_REASON else f"{label} ({found[name]:.2f})")
        return "; ".join(parts)

    def all_confidences(self) -> dict[str, float]:
        """Active and informational diagnoses together (the status message's `diagnoses`)."""
        return {k: round(v, 3) for k, v in {**self.active, **self.info}.items()}
