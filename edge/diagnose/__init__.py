"""Camera diagnosis on the edge: can each camera still see? (issue 6, docs/diagnose.md)."""

from hazardwatch.edge.diagnose.diagnoser import ALL, DEGRADED, INFO, CameraDiagnoser, Diagnosis

__all__ = ["ALL", "DEGRADED", "INFO", "CameraDiagnoser", "Diagnosis"]
