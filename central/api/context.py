"""What every handler reaches through the application: config, store, tokens, metrics and the
service's hooks. Handlers never open a transaction themselves: `run` does it in a worker thread,
so the event loop never blocks on the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from hazardwatch.central.api.auth import RateLimiter, TokenBook
from hazardwatch.central.config import CentralConfig
from hazardwatch.central.metrics import CentralMetrics
from hazardwatch.central.services.events import EventHub
from hazardwatch.central.services.places import NamedArea, named_areas
from hazardwatch.central.store import Database
from hazardwatch.central.warnings.service import WeatherService


def _not_sent(edge_id: str, payload: bytes) -> bool:
    return False


@dataclass
class ApiContext:
    cfg: CentralConfig
    db: Database
    tokens: TokenBook
    metrics: CentralMetrics
    extra_registries: list[CollectorRegistry] = field(default_factory=list)
    on_change: Callable[[], None] = lambda: None
    base_url: str = ""
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(20))
    events: EventHub | None = None
    mqtt_state: Callable[[], str] = lambda: "disabled"
    weather: WeatherService | None = None  # when weather.enabled
    # Central -> edge commands over MQTT (False when not sent: no broker, or not acknowledged).
    publish_command: Callable[[str, bytes], bool] = _not_sent
    areas: list[NamedArea] = field(init=False)  # map.areas, for the place of each incident

    def __post_init__(self) -> None:
        self.areas = named_areas(self.cfg.map)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(tx, *args)` in one transaction, in a worker thread."""

        def work() -> Any:
            with self.db.tx() as tx:
                return fn(tx, *args)

        return await asyncio.to_thread(work)


CTX = web.AppKey("ctx", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CTX]
