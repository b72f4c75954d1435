"""Detectors: turn frames into scored hazard regions. See `Detector` for the plug-in contract."""

from hazardwatch.edge.detect.detector import Detection, Detector, ImageResult, LookContext, ReferenceInput

__all__ = ["Detection", "Detector", "ImageResult", "LookContext", "ReferenceInput"]
