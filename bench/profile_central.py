"""Where one central instance spends its CPU on the ingest path: the `bench/central_ingest.py` workload
(600 cameras, each its own incident, one new alert then updates, every incident notified with
group_wait 0) against a central run in this process under yappi's CPU clock, every thread profiled.

    .venv/bin/python bench/profile_central.py [--alerts 6000] [--cameras 600] [--top 25]

The publisher runs in a child process, so only central's own work is counted. Prints CPU microseconds
per alert by part (contract parsing and validation, correlation and the store, psycopg, planning,
delivery, MQTT, HTTP), then the functions with the most own time. Needs yappi (`pip install yappi`) and
PostgreSQL (`HAZARDWATCH_TEST_PG`). Profiling slows central down: the split, not the rate, is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from central_ingest import publish_alerts

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.service import CentralService
from hazardwatch.configfile import load_config
from hazardwatch.harness.central_proc import Publisher, write_central_config
from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.harness.receiver import Receiver

# Parts of the work, by the first matching fragment of a function's file (order matters).
PARTS = (
    ("contract: JSON parsing and pydantic validation", ("hazardwatch/contract", "pydantic", "json/")),
    ("ingest: batching, acks, clock bounds", ("central/ingest",)),
    ("correlation and the store's SQL", ("central/services/correlation", "central/incidents", "central/store",
                                          "central/services/health", "central/services/aggregates",
                                          "central/services/placement", "central/services/situation",
                                          "central/services/sqlin", "central/response_config")),
    ("psycopg (sending, results)", ("psycopg",)),
    ("planning (dispatch, views, places)", ("central/services/dispatch", "central/services/views",
                                            "central/services/places", "central/services/procedures",
                                            "central/services/suppressions", "central/services/grouping")),
    ("delivery (worker, webhook, recorder)", ("central/notify",)),
    ("MQTT client (paho)", ("paho",)),
    ("HTTP client and server (aiohttp)", ("aiohttp", "yarl", "multidict")),
    ("asyncio, threads, queues", ("asyncio", "threading", "queue", "selectors")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
)


def part_of(path: str) -> str:
    return next((name for name, frags in PARTS if any(f in path for f in frags)), "other")


def stored(service: CentralService) -> float:
    labels = {"kind": "alert", "result": "stored"}
    return service.metrics.registry.get_sample_value("hazardwatch_central_messages_total", labels) or 0.0


def publisher(port: int, alerts: int, cameras: int) -> None:
    pub = Publisher(port, client_id="profile-pub")
    try:
        publish_alerts(pub, alerts, cameras, "prof")
    finally:
        pub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=6000)
    parser.add_argument("--cameras", type=int, default=600)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    import yappi

    n = args.alerts

    if reason := postgres_unavailable_reason():
        raise SystemExit(f"PostgreSQL needed: {reason}")
    with tempfile.TemporaryDirectory() as d, temporary_database("postgres", Path(d)) as url:
        tmp = Path(d)
        with MosquittoBroker(workdir=tmp / "mq") as broker, Receiver() as receiver:
            path = write_central_config(tmp / "central.yaml", broker_port=broker.port, database_url=url,
                                        receiver_url=receiver.url("/hook"), instance_id="profile",
                                        timers={"group_wait_s": 0, "group_interval_s": 5, "repeat_interval_s": 3600})
            service = CentralService(load_config(path, CentralConfig))
            loop = asyncio.new_event_loop()
            stop = asyncio.Event()
            ready = threading.Event()

            async def run() -> None:
                up = asyncio.Event()
                task = asyncio.create_task(service.run(stop, up))
                await up.wait()
                ready.set()
                await task

            yappi.set_clock_type("cpu")
            yappi.start()
            runner = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
            runner.start()
            ready.wait(60)
            t0 = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(
                target=publisher, args=(broker.port, args.alerts, args.cameras))
            child.start()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and (len(receiver.accepted()) < args.cameras or stored(service) < n):
                time.sleep(0.2)
            elapsed = time.perf_counter() - t0
            yappi.stop()
            child.join(30)
            loop.call_soon_threadsafe(stop.set)
            runner.join(30)
    stats = yappi.get_func_stats()
    by_part: dict[str, float] = defaultdict(float)
    for f in stats:
        by_part[part_of(f.module)] += f.tsub
    total = sum(by_part.values())
    print(f"{n} alerts, {len(receiver.accepted())} notifications in {elapsed:.1f} s (profiled); "
          f"central CPU {total:.2f} s = {total / n * 1e6:.0f} us per alert")
    for name, cpu in sorted(by_part.items(), key=lambda kv: -kv[1]):
        print(f"  {cpu / n * 1e6:6.0f} us  {cpu / total:5.1%}  {name}")
    print(f"top {args.top} functions by own CPU time (us per alert, calls per alert):")
    for f in sorted(stats, key=lambda f: -f.tsub)[: args.top]:
        where = f"{f.module.split('site-packages/')[-1]}:{f.lineno}"
        print(f"  {f.tsub / n * 1e6:6.1f}  {f.ncall / n:6.2f}  {f.name}  {where}")


if __name__ == "__main__":
    main()
