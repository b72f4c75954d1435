"""MQTT topic layout, version 1.

    {prefix}/v1/{edge_id}/availability          retained, "online"/"offline" JSON (last will)
    {prefix}/v1/{edge_id}/heartbeat             periodic edge heartbeat
    {prefix}/v1/{edge_id}/alerts/{camera_id}    alert lifecycle events, QoS 1, never retained
    {prefix}/v1/{edge_id}/cameras/{camera_id}/status   retained camera health
    {prefix}/v1/{edge_id}/commands              commands to this edge (central publishes only)
    {prefix}/v1/{edge_id}/models/{hazard}/status   retained model status (rollouts)

The version sits in the topic so a v2 contract can run beside v1 during an upgrade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOPIC_VERSION = "v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_segment(value: str, what: str) -> str:
    """Ids become topic segments: no wildcards, slashes or empty strings."""
    if not _SEGMENT.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 characters of letters, digits, '_', '.', '-'")
    return value


@dataclass(frozen=True)
class Topics:
    """Topic names for one edge (or, with edge_id '+', subscription filters for central)."""

    prefix: str = "hazardwatch"
    edge_id: str = "+"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{TOPIC_VERSION}/{self.edge_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def heartbeat(self) -> str:
        return f"{self.base}/heartbeat"

    @property
    def commands(self) -> str:
        return f"{self.base}/commands"

    def model_status(self, hazard: str = "+") -> str:
        return f"{self.base}/models/{hazard}/status"

    def alerts(self, camera_id: str = "+") -> str:
        return f"{self.base}/alerts/{camera_id}"

    def camera_status(self, camera_id: str = "+") -> str:
        return f"{self.base}/cameras/{camera_id}/status"
