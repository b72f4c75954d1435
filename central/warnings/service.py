"""The weather-warning service: documents in (feeds and the push endpoint), set_risk commands out.

Parsing and database work run in worker threads; feed pollers are independent asyncio tasks. One
lock per instance serialises "reconcile, publish, mark sent", so two paths (a push and a tick) never
send the same change twice from one instance; across instances the database lock orders the work
and a repeated command is harmless (set_risk is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.store import Database
from hazardwatch.central.warnings import lifecycle, rules, views, watch
from hazardwatch.central.warnings.cap_model import CapError
from hazardwatch.central.warnings.cap_parse import alert_from_element
from hazardwatch.central.warnings.feed import FeedPoller
from hazardwatch.central.warnings.safe_xml import parse_xml
from hazardwatch.contract import SetRiskCommand

log = logging.getLogger(__name__)

# (edge_id, payload) -> True once the broker acknowledged it
Publish = Callable[[str, bytes], bool]


class WeatherMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.documents = Counter(
            "hazardwatch_central_weather_documents_total",
            "CAP documents by source kind and result (started, replaced, cancelled, duplicate, ignored, rejected)",
            ["source", "result"],
            registry=r,
        )
        self.rejected = Counter(
            "hazardwatch_central_weather_rejected_total",
            "Documents refused: oversized, forbidden (DTD/entities), malformed, invalid, unsupported, link_refused",
            ["reason"],
            registry=r,
        )
        self.fetches = Counter(
            "hazardwatch_central_weather_fetch_total",
            "Feed polls by result (ok, not_modified, timeout, unreachable, http_error, oversized, rejected, error)",
            ["feed", "result"],
            registry=r,
        )
        self.commands = Counter(
            "hazardwatch_central_weather_commands_total", "set_risk commands by result", ["result"], registry=r
        )
        self.active = Gauge("hazardwatch_central_weather_active_warnings", "Warnings in force", registry=r)
        self.raised = Gauge(
            "hazardwatch_central_weather_raised_watch", "Camera-hazard pairs above normal", ["level"], registry=r
        )


class WeatherService:
    def __init__(self, cfg: CentralConfig, db: Database, publish: Publish) -> None:
        self.cfg = cfg
        self.wcfg = cfg.weather
        self.db = db
        self.publish = publish
        self.metrics = WeatherMetrics()
        self.geocodes = rules.geocode_table(self.wcfg)
        self.tz = ZoneInfo(cfg.timezone)
        self._send_lock = threading.Lock()
        self.pollers = [
            FeedPoller(f, self._handle_element, self._reject_async, self._count_fetch, self.wcfg.max_document_bytes)
            for f in self.wcfg.feeds
        ]

    # -- documents in ------------------------------------------------------------------------------
    def ingest(self, data: bytes, source: str, source_kind: str = "push") -> lifecycle.CapEffect:
        """One CAP document (bytes); raises CapError when rejected (already logged and counted)."""
        try:
            root = parse_xml(data, self.wcfg.max_document_bytes)
        except CapError as exc:
            self.reject(source, exc.code, exc.reason, source_kind)
            raise
        return self.ingest_element(root, source, source_kind)

    def ingest_element(self, root: Element, source: str, source_kind: str) -> lifecycle.CapEffect:
        now = time.time()
        try:
            alert = alert_from_element(root, strict=self.wcfg.strict, tz=self.tz)
        except CapError as exc:
            self.reject(source, exc.code, exc.reason, source_kind)
            raise
        with self.db.tx() as tx:
            outcome = lifecycle.store_alert(tx, alert, self.wcfg, source, now)
        self.metrics.documents.labels(source_kind, outcome.result).inc()
        log.info(
            "weather warning %s/%s (%s %s) from %s: %s%s",
            alert.sender,
            alert.identifier,
            alert.status,
            alert.msg_type,
            source[:200],
            outcome.result,
            f" ({outcome.reason})" if outcome.reason else "",
        )
        if outcome.result != "duplicate":
            self.tick(now)
        return outcome

    def reject(self, source: str, code: str, reason: str, source_kind: str = "feed") -> None:
        self.metrics.rejected.labels(code).inc()
        self.metrics.documents.labels(source_kind, "rejected").inc()
        log.warning("weather document from %s rejected (%s): %s", source[:200], code, reason[:300])
        try:
            with self.db.tx() as tx:
                lifecycle.record_rejection(tx, time.time(), source, code, reason)
        except Exception:
            log.exception("could not record a rejected weather document")

    async def _handle_element(self, root: Element, source: str) -> bool:
        try:
            await asyncio.to_thread(self.ingest_element, root, source, "feed")
        except CapError:
            return True  # permanently bad: recorded, not retried
        except Exception:
            log.exception("weather document from %s could not be stored; will retry", source[:200])
            return False
        return True

    async def _reject_async(self, source: str, code: str, reason: str) -> None:
        await asyncio.to_thread(self.reject, source, code, reason, "feed")

    def _count_fetch(self, feed: str, result: str) -> None:
        self.metrics.fetches.labels(feed, result).inc()

    # -- commands out ------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[watch.Command]:
        """Expire, recompute every camera's target, send what changed; return the commands sent."""
        now = time.time() if now is None else now
        with self._send_lock:
            with self.db.tx() as tx:
                lifecycle.expire_due(tx, now)
                cameras = watch.camera_places(tx, self.wcfg)
                desired = watch.desired_watch(tx, cameras, self.geocodes, now)
                commands = watch.reconcile(tx, desired, now)
            sent = []
            for cmd in commands:
                if self._send(cmd, now):
                    sent.append(cmd)
                    with self.db.tx() as tx:
                        watch.mark_sent(tx, cmd, now)
            self._gauges(now)
        return sent

    def _send(self, cmd: watch.Command, now: float) -> bool:
        payload = SetRiskCommand(
            edge_id=cmd.edge_id,
            sent_at=now,
            command_id=cmd.command_id,
            hazard=cmd.hazard,
            level=cmd.level,
            cameras=list(cmd.cameras),
            until=cmd.until,
            reason=cmd.reason,
        ).model_dump_json()
        try:
            ok = self.publish(cmd.edge_id, payload.encode())
        except Exception:
            log.exception("publishing set_risk to %s failed", cmd.edge_id)
            ok = False
        self.metrics.commands.labels("sent" if ok else "failed").inc()
        if ok:
            log.info(
                "set_risk %s %s on %s/%s until %s: %s",
                cmd.hazard.value,
                cmd.level.value,
                cmd.edge_id,
                ",".join(cmd.cameras),
                cmd.until,
                cmd.reason,
            )
        else:
            log.warning("set_risk to %s not acknowledged by the broker; retried next tick", cmd.edge_id)
        return ok

    def _gauges(self, now: float) -> None:
        with self.db.tx() as tx:
            active = tx.scalar(
                "SELECT COUNT(*) FROM weather_warnings WHERE state = 'active' AND effective <= ? AND expires > ?",
                (now, now),
            )
            levels = dict(tx.execute("SELECT level, COUNT(*) FROM weather_watch GROUP BY level"))
        self.metrics.active.set(int(active or 0))
        for level in ("elevated", "high"):
            self.metrics.raised.labels(level).set(int(levels.get(level, 0)))

    # -- views -------------------------------------------------------------------------------------
    def warnings(self, state: str | None, limit: int) -> dict[str, Any]:
        with self.db.tx() as tx:
            return views.warnings_view(tx, time.time(), state, limit, self.geocodes)

    def watch(self) -> dict[str, Any]:
        with self.db.tx() as tx:
            return views.watch_view(tx)

    # -- loop --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Feed pollers plus the periodic tick (expiry, late-effective warnings, resends)."""
        session = aiohttp.ClientSession(headers={"User-Agent": "hazardwatch-central (CAP reader)"})
        tasks = [asyncio.create_task(p.run(session), name=f"weather-feed-{p.cfg.name}") for p in self.pollers]
        try:
            while True:
                try:
                    await asyncio.to_thread(self.tick)
                except Exception:
                    log.exception("weather tick failed; retrying")
                await asyncio.sleep(self.wcfg.reconcile_s)
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()
