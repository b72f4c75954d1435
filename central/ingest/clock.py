"""What central trusts of an edge's clock.

Edge boxes have no battery clock: after a power cut they may run at 1970 until NTP answers, or far ahead
when a bad NTP source answers. A timestamp from the network is therefore only believed within a window
around central's own receive time: at most `max_skew_s` ahead (clocks disagree a little) and at most
`max_age_s` behind (an edge outbox holds alerts through an outage, not for months). Outside that window
the value is replaced by the receive time and counted with the field, so a wrong clock can neither pin a
camera offline (`since: 1e18`) nor turn an incident into a sink for later alerts (`last_frame_at: 1e308`),
and the alert itself is still stored. Ordering of alert events comes from the edge's `seq`, not its clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from hazardwatch.contract import Alert, Availability, CameraStatus, Heartbeat, ModelStatus

TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "alert": ("sent_at", "first_frame_at", "last_frame_at"),
    "camera_status": ("sent_at", "since", "last_frame_at"),
    "availability": ("sent_at",),
    "heartbeat": ("sent_at",),
    "model_status": ("sent_at",),
}

Message = Alert | CameraStatus | Availability | Heartbeat | ModelStatus


class ClockConfig(BaseModel):
    """How far an edge's timestamps may stray from central's receive time before they are replaced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_skew_s: float = Field(default=300.0, ge=0, le=86400, description="How far ahead of central an edge may be")
    max_age_s: float = Field(
        default=30 * 86400.0,
        gt=0,
        le=366 * 86400,
        description="How old a timestamp may be (alerts held in an edge outbox through an outage)",
    )


@dataclass(frozen=True)
class Clamped:
    """One timestamp replaced by the receive time: which field, and whether it was ahead or behind."""

    field: str
    direction: str  # "future" or "past"
    value: float


def bound_times(msg: Message, now: float, cfg: ClockConfig) -> tuple[Message, list[Clamped]]:
    """The message with every timestamp outside [now - max_age_s, now + max_skew_s] set to `now`."""
    changes: dict[str, float] = {}
    clamped: list[Clamped] = []
    for name in TIME_FIELDS.get(msg.kind, ("sent_at",)):
        value = getattr(msg, name, None)
        if value is None:
            continue
        if value > now + cfg.max_skew_s:
            clamped.append(Clamped(name, "future", value))
        elif value < now - cfg.max_age_s:
            clamped.append(Clamped(name, "past", value))
        else:
            continue
        changes[name] = now
    if not changes:
        return msg, []
    if isinstance(msg, Alert):
        first = changes.get("first_frame_at", msg.first_frame_at)
        last = changes.get("last_frame_at", msg.last_frame_at)
        changes["first_frame_at"] = min(first, last)  # a clamped end must not precede the start
    return msg.model_copy(update=changes), clamped
