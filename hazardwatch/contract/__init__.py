"""The wire contract between edges and central: MQTT topics and JSON payloads.

Only pydantic is needed here so that central, third-party consumers and the edge can all import it.
The JSON Schema for third parties is `configs/schemas/mqtt-contract.schema.json`
(regenerate with `hazardwatch schemas export`).
"""

from hazardwatch.contract.messages import (
    SCHEMA_VERSION,
    Alert,
    AlertState,
    Availability,
    Box,
    CameraState,
    CameraStatus,
    Command,
    Hazard,
    Heartbeat,
    LearnNormalCommand,
    ModelStatus,
    RiskLevel,
    RolloutCommand,
    SetRiskCommand,
    parse_message,
)
from hazardwatch.contract.topics import Topics

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertState",
    "Availability",
    "Box",
    "CameraState",
    "CameraStatus",
    "Command",
    "Hazard",
    "Heartbeat",
    "LearnNormalCommand",
    "ModelStatus",
    "RiskLevel",
    "RolloutCommand",
    "SetRiskCommand",
    "Topics",
    "parse_message",
]
