"""The edge engine: wiring (build from config), core (patrol loop and commands), batching (the one
inference loop), emit (messages to the outbox) and views (what the HTTP API reads)."""

from hazardwatch.edge.engine.core import EdgeEngine
from hazardwatch.edge.engine.wiring import CameraRuntime, EngineSetupError, load_detectors

__all__ = ["CameraRuntime", "EdgeEngine", "EngineSetupError", "load_detectors"]
