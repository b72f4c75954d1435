"""The delivery worker through a long database outage: its claim backoff stays finite and it keeps running."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from hazardwatch.central.config import ReceiverConfig
from hazardwatch.central.notify.worker import DeliveryWorker
from hazardwatch.central.store.database import Database

pytestmark = pytest.mark.quick


def test_a_worker_survives_more_than_a_thousand_failed_claims(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """An unmigrated database fails every claim, as one that is down does; poll_interval_s 0 packs the hours
    of failures a real outage takes (~1,024 at the 30 s cap) into a moment."""
    db = Database(f"sqlite:///{tmp_path / 'no-tables.db'}")
    receiver = ReceiverConfig(name="r", kind="webhook", url="http://127.0.0.1:9/hook")
    worker = DeliveryWorker(db, [receiver], "i1", poll_interval_s=0.0)

    def failed_claims() -> int:
        return sum(1 for r in caplog.records if r.getMessage().startswith("delivery claim failed"))

    async def main() -> BaseException | None:
        runner = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 60
        while failed_claims() < 1100 and not runner.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        crashed = runner.exception() if runner.done() else None
        await worker.stop(grace_s=0.1)
        await runner
        return crashed

    with caplog.at_level(logging.ERROR, logger="hazardwatch.central.notify.worker"):
        try:
            crashed = asyncio.run(main())
        finally:
            db.close()
    assert crashed is None
    assert failed_claims() >= 1100
