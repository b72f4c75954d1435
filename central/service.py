"""The central service: wiring of store, MQTT ingest, dispatcher, delivery worker and HTTP API.

Loops (each safe to run in several instances on one PostgreSQL):
- ingest (thread): MQTT -> validate -> store in batches -> acknowledge;
- dispatcher: plans notifications of changed or due incidents (timers, silences, inhibition);
- housekeeping: auto-resolves quiet incidents;
- delivery worker: sends queued notifications with retries (hazardwatch.central.notify);
- events: the change feed behind the dashboard's event stream (services/events.py);
- rollouts: drives model rollouts, canary first;
- weather (when enabled): polls the warning feeds and keeps the cameras' watch levels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web

from hazardwatch.central.api.app import make_app
from hazardwatch.central.api.auth import RateLimiter, TokenBook
from hazardwatch.central.api.context import ApiContext
from hazardwatch.central.config import CentralConfig
from hazardwatch.central.ingest.mqtt_ingest import MqttIngest
from hazardwatch.central.metrics import CentralMetrics
from hazardwatch.central.notify.cap import CapOptions
from hazardwatch.central.notify.worker import DeliveryWorker
from hazardwatch.central.services import dispatch, grouping, incidents, registry
from hazardwatch.central.services.events import EventHub
from hazardwatch.central.store import Database
from hazardwatch.central.store.database import safe_url
from hazardwatch.central.warnings.service import WeatherService
from hazardwatch.kernel.tasks import run_stages

log = logging.getLogger(__name__)
DISPATCH_PERIOD_S = 0.5
DISPATCH_BATCH = 200  # incidents planned per transaction
DISPATCH_MAX_BATCHES = 50  # per pass, so a pass always ends
HOUSEKEEPING_PERIOD_S = 5.0
SUBSCRIBE_WAIT_S = 10.0
ROLLOUT_PERIOD_S = 1.0


def database_url(cfg: CentralConfig) -> str:
    url = cfg.database.url
    pw = cfg.database.password
    if pw and url.startswith(("postgresql://", "postgres://")) and "@" in url:
        from hazardwatch.configfile import resolve_secret

        secret = resolve_secret(pw.value, pw.env, pw.file, "database password") or ""
        scheme, rest = url.split("://", 1)
        user, host = rest.split("@", 1)
        if ":" not in user:
            from urllib.parse import quote

            url = f"{scheme}://{user}:{quote(secret, safe='')}@{host}"
    return url


class CentralService:
    def __init__(self, cfg: CentralConfig) -> None:
        self.cfg = cfg
        self.metrics = CentralMetrics()
        self.db = Database(database_url(cfg))
        self.schema_version = self.db.migrate()
        log.info("database %s at schema version %d", safe_url(cfg.database.url), self.schema_version)
        self._dispatch_wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        from prometheus_client import CollectorRegistry

        self.delivery_registry = CollectorRegistry()
        self.worker = DeliveryWorker(
            self.db,
            list(cfg.receivers),
            cfg.instance_id,
            metrics=self.delivery_registry,
            cap_options=CapOptions(
                sender=f"hazardwatch@{cfg.instance_id}",
                sender_name=cfg.site or "hazardwatch central",
                timezone=cfg.timezone,
                web_base=cfg.http.public_url,
            ),
        )
        self.ingest = MqttIngest(cfg, self.db, self.metrics, self._stored_from_thread) if cfg.broker else None
        self.weather = WeatherService(cfg, self.db, self._publish_command) if cfg.weather.enabled else None
        self.http_port = cfg.http.port
        self.ctx = ApiContext(
            cfg=cfg,
            db=self.db,
            tokens=TokenBook(cfg.auth),
            metrics=self.metrics,
            extra_registries=[self.delivery_registry, *([self.weather.metrics.registry] if self.weather else [])],
            on_change=self.changed,
            base_url=cfg.http.public_url or "",
            limiter=RateLimiter(cfg.auth.login_rate_per_min),
            mqtt_state=self._mqtt_state,
            weather=self.weather,
            publish_command=self._publish_command,
        )

    def _publish_command(self, edge_id: str, payload: bytes) -> bool:
        return self.ingest.publish_command(edge_id, payload) if self.ingest else False

    async def _rollouts(self) -> None:
        """Drive model rollouts (central/services/registry.py): canary first, then the other edges."""
        while True:
            await asyncio.sleep(ROLLOUT_PERIOD_S)
            try:

                def step() -> list[registry.Send]:
                    with self.db.tx() as tx:
                        return registry.advance(tx, time.time())

                for send in await asyncio.to_thread(step):
                    if not await asyncio.to_thread(self._publish_command, send.edge_id, send.payload):
                        log.warning("rollout command to %s not sent now; it is resent later", send.edge_id)
            except Exception:
                log.exception("rollout step failed")

    def _mqtt_state(self) -> str:
        if self.ingest is None:
            return "disabled"
        if self.ingest.subscribed.is_set():
            return "subscribed"
        return "connected" if self.ingest.connected else "disconnected"

    # -- change propagation -------------------------------------------------------------------------
    def changed(self) -> None:
        """Something in the store changed: plan notifications and push events now."""
        if self._dispatch_wake:
            self._dispatch_wake.set()
        if self.ctx.events:
            self.ctx.events.poke()

    def _stored_from_thread(self, count: int) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self.changed)

    # -- loops ----------------------------------------------------------------------------------------
    async def _dispatcher(self) -> None:
        assert self._dispatch_wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dispatch_wake.wait(), DISPATCH_PERIOD_S)
            self._dispatch_wake.clear()
            try:
                planned = await asyncio.to_thread(self.dispatch_once, time.time())
            except Exception:
                log.exception("dispatch failed; retrying")
                continue
            if planned:
                self.worker.wake()

    def dispatch_once(self, now: float) -> int:
        """Plan every due incident, one transaction per batch; return how many notifications went out."""
        enqueued = 0
        for _ in range(DISPATCH_MAX_BATCHES):
            with self.db.tx() as tx:
                planned, examined = dispatch.plan_due(
                    tx, self.cfg, now, self.ctx.base_url, DISPATCH_BATCH, self.ctx.areas
                )
            for plan in planned:
                if plan.suppressed:
                    self.metrics.suppressed.inc()
                elif plan.receivers:
                    enqueued += len(plan.receivers)
                    self.metrics.notifications_planned.labels(plan.msg_type).inc(len(plan.receivers))
            if examined < DISPATCH_BATCH:
                break
            self.worker.wake()  # a burst: this batch goes out while the next one is planned
        if any(r.group_by for r in self.cfg.receivers):
            with self.db.tx() as tx:
                enqueued += grouping.flush(tx, self.cfg, now)
        return enqueued

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_PERIOD_S)
            try:

                def resolve() -> list[int]:
                    with self.db.tx() as tx:
                        return incidents.auto_resolve(tx, self.cfg, time.time())

                if await asyncio.to_thread(resolve):
                    self.changed()
            except Exception:
                log.exception("housekeeping failed")

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._dispatch_wake = asyncio.Event()
        self.ctx.events = EventHub(self.db, areas=self.ctx.areas)
        runner = web.AppRunner(make_app(self.ctx), access_log=None)
        await runner.setup()
        # SO_REUSEADDR: a restart within a minute gets its port back though old connections sit in TIME_WAIT.
        site = web.TCPSite(runner, self.cfg.http.host, self.cfg.http.port, reuse_address=True)
        await site.start()
        server = site._server
        if isinstance(server, asyncio.Server) and server.sockets:
            self.http_port = server.sockets[0].getsockname()[1]
        if not self.ctx.base_url:
            self.ctx.base_url = f"http://{self.cfg.http.host}:{self.http_port}"
        if self.ingest:
            self.ingest.start()
            # Ready means subscribed, so nothing published after start-up is missed; a broker that is
            # down does not hold the API back for long (ingest keeps reconnecting).
            if not await asyncio.to_thread(self.ingest.subscribed.wait, SUBSCRIBE_WAIT_S):
                log.warning("not subscribed to the broker after %.0f s; serving the API anyway", SUBSCRIBE_WAIT_S)
        tasks = [
            asyncio.create_task(self._dispatcher(), name="dispatcher"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
            asyncio.create_task(self.worker.run(), name="delivery"),
            asyncio.create_task(self.ctx.events.run(), name="events"),
            asyncio.create_task(self._rollouts(), name="rollouts"),
        ]
        if self.weather:
            tasks.append(asyncio.create_task(self.weather.run(), name="weather"))
        if ready:
            ready.set()
        try:
            await run_stages("central", tasks, stop, before_cancel=self.worker.stop)
        finally:
            if self.ingest:
                await asyncio.to_thread(self.ingest.stop)
            self.ctx.events.close()  # open pages' streams end now, or cleanup would wait on them
            await runner.cleanup()
            self.db.close()
