"""The emitter's storage error: set while the outbox cannot store, cleared by the next message it stores."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from support.disk import small_tmpfs

from hazardwatch.contract import CameraState
from hazardwatch.edge.config import EdgeConfig
from hazardwatch.edge.engine.emit import Emitter
from hazardwatch.edge.health import HealthChange
from hazardwatch.edge.metrics import EdgeMetrics
from hazardwatch.edge.publish.outbox import Outbox

pytestmark = pytest.mark.quick


def test_a_status_stored_after_a_full_disk_clears_the_storage_error(tmp_path: Path) -> None:
    """A quiet edge sends statuses, not alerts: once space is free again, the next status it stores ends the
    'degraded' /healthz, as the next alert would."""
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        cfg = EdgeConfig.model_validate(
            {
                "edge_id": "e1",
                "broker": None,
                "cameras": [{"id": "cam", "source": str(tmp_path), "hazards": {"smoke": {}}}],
                "models": [{"manifest": str(tmp_path / "m.json")}],
                "outbox": {"path": str(disk / "outbox.db")},
            }
        )
        outbox = Outbox(cfg.outbox.path, cfg.outbox.max_messages)
        emit = Emitter(cfg, outbox, EdgeMetrics(), None)
        filler = disk / "filler.bin"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        for k in range(500):
            emit.camera_status(HealthChange(f"cam{k}", CameraState.OFFLINE, "x" * 200, 1.0, None))
            if emit.storage_error:
                break
        assert emit.storage_error and "cannot write" in emit.storage_error
        filler.unlink()  # the field engineer frees space
        emit.camera_status(HealthChange("cam", CameraState.ONLINE, "", 2.0, 2.0))
        assert emit.storage_error is None
        outbox.close()
