"""Camera diagnosis on the edge: can each camera still see? (docs/diagnose.md)."""

from hazardwatch.edge.diagnose.diagnoser import CameraDiagnoser
from hazardwatch.edge.diagnose.diagnosis import ALL, DEGRADED, INFO, Diagnosis

__all__ = ["ALL", "DEGRADED", "INFO", "CameraDiagnoser", "Diagnosis"]
