"""What ingest takes from the broker: the raw message, its topic's meaning, and contract validation
(an edge may only speak for itself), apart from the client that receives them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hazardwatch.contract import Alert, Availability, CameraStatus, Heartbeat, ModelStatus, parse_message
from hazardwatch.contract.messages import ContractError


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int


Message = Alert | CameraStatus | Availability | Heartbeat | ModelStatus
Valid = tuple[Incoming, Message]


class Rejected(Exception):
    """A message that can never be applied (it is acknowledged, logged and counted)."""


def topic_kind(topic: str, prefix: str) -> tuple[str, str, str | None]:
    """`prefix/v1/edge/alerts/cam` -> ('alert', 'edge', 'cam'); raises Rejected for anything else."""
    parts = topic.split("/")
    base = prefix.split("/")
    if parts[: len(base)] != base or len(parts) < len(base) + 3 or parts[len(base)] != "v1":
        raise Rejected(f"unexpected topic {topic!r}")
    edge, rest = parts[len(base) + 1], parts[len(base) + 2 :]
    if rest == ["availability"]:
        return "availability", edge, None
    if rest == ["heartbeat"]:
        return "heartbeat", edge, None
    if len(rest) == 2 and rest[0] == "alerts":
        return "alert", edge, rest[1]
    if len(rest) == 3 and rest[0] == "cameras" and rest[2] == "status":
        return "camera_status", edge, rest[1]
    if len(rest) == 3 and rest[0] == "models" and rest[2] == "status":
        return "model_status", edge, None
    raise Rejected(f"unexpected topic {topic!r}")


def default_client_id(instance_id: str, password: str | None) -> str:
    """Central's MQTT client id: stable across restarts (its persistent session waits under it) and, with a
    password, unguessable to anyone without that password, so another broker user cannot connect under it
    and take the session over where the broker does not bind client ids to users (docs/security.md)."""
    base = f"hazardwatch-central-{instance_id}"
    if not password:
        return base
    tag = hashlib.sha256(f"hazardwatch central client id\0{instance_id}\0{password}".encode()).hexdigest()[:20]
    return f"{base}-{tag}"


def validate(msg: Incoming, prefix: str) -> Message:
    """Contract validation plus topic consistency: an edge may only speak for itself."""
    kind, edge, camera = topic_kind(msg.topic, prefix)
    try:
        parsed = parse_message(msg.payload)
    except ContractError as exc:
        raise Rejected(str(exc)) from None
    if parsed.kind != kind:
        raise Rejected(f"a {parsed.kind} message on a {kind} topic")
    if parsed.edge_id != edge:
        raise Rejected(f"edge_id {parsed.edge_id!r} does not match the topic's edge {edge!r}")
    if camera is not None and getattr(parsed, "camera_id", None) != camera:
        raise Rejected(f"camera_id does not match the topic's camera {camera!r}")
    return parsed  # type: ignore[return-value]
