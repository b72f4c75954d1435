"""Central ingest benchmark: alerts per second ingested, correlated and stored (SQLite and PostgreSQL,
one and two instances on a shared subscription), and time from an alert's publication to the
receiver's notification (p50, p99) with group_wait 0 (on PostgreSQL when it is reachable).

    .venv/bin/python bench/central_ingest.py [--alerts 6000] [--cameras 600] [--latency-alerts 200]

Everything is real: a private Mosquitto, `hazardwatch central` processes, a paho publisher and an
aiohttp receiver. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from hazardwatch.harness.central_proc import CentralProcess, Publisher, alert_payload, alert_topic, write_central_config
from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.harness.receiver import Receiver


def stored(centrals: list[CentralProcess]) -> float:
    total = 0.0
    for c in centrals:
        for line in c.request("GET", "/metrics")[1].splitlines():
            if line.startswith('hazardwatch_central_messages_total{kind="alert",result="stored"}'):
                total += float(line.split()[-1])
    return total


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process on this box (server and backends), for the share it takes."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += cpu_s(int(entry.name))
            except OSError:
                continue
    return total


def rss_mb(central: CentralProcess) -> float:
    assert central.proc is not None
    for line in Path(f"/proc/{central.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(tmp: Path, broker: MosquittoBroker, url: str, receiver: Receiver, n: int, tag: str) -> list[CentralProcess]:
    out = []
    for k in range(n):
        name = f"bench-{tag}-{k}"
        cfg = write_central_config(
            tmp / f"{name}.yaml",
            broker_port=broker.port,
            database_url=url,
            receiver_url=receiver.url("/hook"),
            instance_id=name,
            timers={"group_wait_s": 0, "group_interval_s": 5, "repeat_interval_s": 3600},
        )
        out.append(CentralProcess(cfg, tmp / f"{name}.log").start())
    time.sleep(0.5)
    return out


def publish_alerts(pub: Publisher, alerts: int, cameras: int, tag: str) -> None:
    """`alerts` alerts from `cameras` cameras far apart (each its own incident): one new, then updates."""
    for k in range(alerts):
        cam, seq = k % cameras, k // cameras
        where = {"lat": -60 + (cam % 120), "lon": -170 + cam // 120 * 3}
        doc = alert_payload(seq, edge=f"e{cam}", cam="c", alert_id=f"a-{tag}-{cam:05d}", **where,
                            state="new" if seq == 0 else "update", score=min(1.0, 0.5 + 0.01 * seq))
        pub.send(alert_topic(f"e{cam}", "c"), doc, wait=k % 500 == 499)


def ingest_rate(tmp: Path, url: str, instances: int, alerts: int, cameras: int, tag: str) -> dict:
    """Alerts from `cameras` cameras (one new, then updates), spread so each camera is its own incident."""
    with MosquittoBroker(workdir=tmp / f"mq-{tag}") as broker, Receiver() as receiver:
        centrals = start(tmp, broker, url, receiver, instances, tag)
        pub = Publisher(broker.port, client_id=f"bench-pub-{tag}")
        try:
            cpu0 = sum(cpu_s(c.proc.pid) for c in centrals if c.proc)
            pg0 = postgres_cpu_s()
            t0 = time.perf_counter()
            publish_alerts(pub, alerts, cameras, tag)
            published = time.perf_counter() - t0
            deadline = time.monotonic() + 600
            while stored(centrals) < alerts and time.monotonic() < deadline:
                time.sleep(0.2)
            elapsed = time.perf_counter() - t0
            done = stored(centrals)
            rss = max(rss_mb(c) for c in centrals)
            central_cpu = sum(cpu_s(c.proc.pid) for c in centrals if c.proc) - cpu0
            pg_cpu = postgres_cpu_s() - pg0
        finally:
            pub.close()
            for c in centrals:
                c.stop()
    rate = done / elapsed
    print(
        f"  {tag}: {done:.0f}/{alerts} alerts in {elapsed:.1f} s (published in {published:.1f} s): "
        f"{rate:.0f} alerts/s, rss {rss:.0f} MB; CPU per alert: central {central_cpu / done * 1e6:.0f} us, "
        f"database {pg_cpu / done * 1e6:.0f} us",
        flush=True,
    )
    return {
        "alerts_per_s": round(rate, 1),
        "stored": done,
        "seconds": round(elapsed, 2),
        "rss_mb": round(rss, 1),
        "central_cpu_us_per_alert": round(central_cpu / done * 1e6),
        "database_cpu_us_per_alert": round(pg_cpu / done * 1e6),
    }


def store_only(url: str, alerts: int, cameras: int, pipeline: bool) -> float:
    """`MqttIngest.store` alone on one database, batches of 500 as ingest makes them (no broker, no
    notifications): what the store path costs, with or without psycopg's pipeline mode."""
    from hazardwatch.central.config import BrokerConfig, CentralConfig
    from hazardwatch.central.ingest.mqtt_ingest import Incoming, MqttIngest, validate
    from hazardwatch.central.metrics import CentralMetrics
    from hazardwatch.central.store import Database

    msgs = []
    for k in range(alerts):
        cam, seq = k % cameras, k // cameras
        doc = alert_payload(seq, edge=f"e{cam}", cam="c", alert_id=f"a-store-{cam:05d}",
                            state="new" if seq == 0 else "update", lat=-60 + (cam % 120), lon=-170 + cam // 120 * 3,
                            score=min(1.0, 0.5 + 0.01 * seq))
        msgs.append(Incoming(alert_topic(f"e{cam}", "c"), json.dumps(doc).encode(), k, 1))
    db = Database(url)
    db.migrate()
    if not pipeline:
        piped = db.tx
        db.tx = lambda pipeline=False: piped(pipeline=False)  # type: ignore[method-assign]
    cfg = CentralConfig(broker=BrokerConfig(), database={"url": url})
    ingest = MqttIngest(cfg, db, CentralMetrics(), lambda n: None)
    try:
        t0 = time.perf_counter()
        for i in range(0, alerts, 500):
            ingest.store([(m, validate(m, "hazardwatch")) for m in msgs[i : i + 500]])
        return alerts / (time.perf_counter() - t0)
    finally:
        db.close()


def planning_rate(url: str, incidents: int) -> float:
    """Incidents planned per second: `incidents` new incidents, all due, planned in batches of 200 as the
    dispatcher does (each notification's payload is the incident's full view, with its place)."""
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.central.services import dispatch
    from hazardwatch.central.services import incidents as service
    from hazardwatch.central.store import Database
    from hazardwatch.contract import Alert, parse_message

    cfg = CentralConfig.model_validate({
        "broker": None, "timers": {"group_wait_s": 0, "group_interval_s": 60, "repeat_interval_s": 3600},
        "receivers": [{"name": "cmd", "kind": "webhook", "url": "http://127.0.0.1:9/x"}]})
    db = Database(url)
    db.migrate()
    try:
        with db.tx() as tx:
            for k in range(incidents):
                doc = alert_payload(0, edge=f"b{k}", cam="c", alert_id=f"a-plan-{k:05d}", at=1000.0,
                                    lat=-60 + k % 120, lon=-170 + k // 120 * 3)
                alert = parse_message(json.dumps(doc))
                assert isinstance(alert, Alert)
                service.apply_alert(tx, alert, cfg, 1000.0)
        t0, planned = time.perf_counter(), 0
        while True:
            with db.tx() as tx:
                done, examined = dispatch.plan_due(tx, cfg, 1001.0, "http://central", 200)
            planned += len(done)
            if examined < 200:
                return planned / (time.perf_counter() - t0)
    finally:
        db.close()


def notify_latency(tmp: Path, url: str, count: int, rate: float) -> dict:
    """New incidents at a steady rate; latency = receiver arrival - publication."""
    with MosquittoBroker(workdir=tmp / "mq-lat") as broker, Receiver() as receiver:
        centrals = start(tmp, broker, url, receiver, 1, "lat")
        pub = Publisher(broker.port, client_id="bench-pub-lat")
        sent: dict[str, float] = {}
        try:
            for k in range(count):
                edge = f"lat{k}"
                sent[f"{edge}/c"] = time.time()
                pub.send(
                    alert_topic(edge, "c"),
                    alert_payload(
                        0, edge=edge, cam="c", alert_id=f"a-lat-{k:05d}", lat=-60 + k % 120, lon=-170 + k // 120 * 3
                    ),
                )
                time.sleep(1 / rate)
            deadline = time.monotonic() + 60
            while len(receiver.accepted()) < count and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            pub.close()
            for c in centrals:
                c.stop()
    latencies = []
    for r in receiver.accepted():
        body = json.loads(r.body)
        cam = body["incident"]["camera_keys"][0]
        latencies.append(r.at - sent[cam])
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"  notify latency over {len(latencies)} incidents: p50 {p50:.3f} s, p99 {p99:.3f} s", flush=True)
    return {"p50": round(p50, 4), "p99": round(p99, 4), "n": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=6000)
    parser.add_argument("--cameras", type=int, default=600)
    parser.add_argument("--latency-alerts", type=int, default=200)
    parser.add_argument("--latency-rate", type=float, default=20.0)
    parser.add_argument(
        "--runs",
        default="sqlite_1,postgres_1,postgres_2,latency",
        help="comma-separated subset of sqlite_1, postgres_1, postgres_2, latency, store (store path alone, "
        "with and without pipelining, 3 runs each), planning (1,000 due incidents planned, 3 runs)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="PostgreSQL runs each; the median is reported")
    args = parser.parse_args()
    runs = set(args.runs.split(","))
    result: dict = {"date": time.strftime("%Y-%m-%d"), "alerts": args.alerts, "cameras": args.cameras}
    pg_reason = postgres_unavailable_reason()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "sqlite_1" in runs:
            print("SQLite, one instance", flush=True)
            with temporary_database("sqlite", tmp / "s1") as url:
                (tmp / "s1").mkdir(exist_ok=True)
                result["sqlite_1"] = ingest_rate(tmp, url, 1, args.alerts, args.cameras, "s1")
        if pg_reason:
            print(f"PostgreSQL skipped: {pg_reason}")
        else:
            for n in (n for n in (1, 2) if f"postgres_{n}" in runs):
                print(f"PostgreSQL, {n} instance(s)", flush=True)
                tries = []
                for k in range(args.repeat):  # a fresh database each time; the median run is reported
                    with temporary_database("postgres", tmp) as url:
                        tries.append(ingest_rate(tmp, url, n, args.alerts, args.cameras, f"p{n}-{k}"))
                tries.sort(key=lambda r: r["alerts_per_s"])
                result[f"postgres_{n}"] = {**tries[len(tries) // 2], "runs": [r["alerts_per_s"] for r in tries]}
        if "store" in runs and not pg_reason:
            rates: dict[str, list[float]] = {"pipelined": [], "not_pipelined": []}
            for _ in range(3):
                for name, piped in (("pipelined", True), ("not_pipelined", False)):
                    with temporary_database("postgres", tmp) as url:
                        rates[name].append(store_only(url, args.alerts, args.cameras, piped))
            result["store_alone"] = {k: round(statistics.median(v)) for k, v in rates.items()}
            print(f"  store path alone, median of 3: {result['store_alone']} alerts/s", flush=True)
        if "planning" in runs and not pg_reason:
            plans = []
            for _ in range(3):
                with temporary_database("postgres", tmp) as url:
                    plans.append(planning_rate(url, 1000))
            result["planned_per_s"] = round(statistics.median(plans))
            print(f"  planning 1,000 due incidents, median of 3: {result['planned_per_s']} incidents/s "
                  f"({', '.join(f'{p:.0f}' for p in plans)})", flush=True)
        lat: dict = {}
        if "latency" in runs:
            kind = "sqlite" if pg_reason else "postgres"
            print(f"notification latency ({kind}, group_wait 0)", flush=True)
            with temporary_database(kind, tmp / "lat") as url:
                (tmp / "lat").mkdir(exist_ok=True)
                lat = notify_latency(tmp, url, args.latency_alerts, args.latency_rate)
    result["alerts_per_s_sqlite"] = result.get("sqlite_1", {}).get("alerts_per_s")
    result["alerts_per_s"] = result.get("postgres_1", {}).get("alerts_per_s")
    result["alerts_per_s_two_instances"] = result.get("postgres_2", {}).get("alerts_per_s")
    result["p50_notify_s"] = lat.get("p50")
    result["p99_notify_s"] = lat.get("p99")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
