"""Fleet simulator: a district-sized fleet on a typhoon night against real central processes.

    .venv/bin/python bench/fleet.py [--cameras 40000] [--edges 300] [--burst-cameras 800] [--instances 1,2]

What one run does, for one and then two central instances (fresh broker and database each time):
1. every simulated edge connects with its own MQTT client id and last will, publishes its retained
   availability and the retained status of each of its cameras (40,000 status messages: a fleet start);
   heartbeats then flow every 30 s per edge for the rest of the run, as on a real night;
2. typhoon burst: `--burst-cameras` cameras raise an alert each (new, update, end; waterlogging, fallen
   tree, some smoke) as fast as the edges can publish, while 5 % of the fleet flaps offline and back;
   the sustained rate is alerts stored per second from the first publish to the last stored alert;
3. notification latency: new incidents at a steady `--nominal-rate` per second with group_wait 0, from
   the edge's publish to the receiver's 2xx (p50, p99); also p99 of the burst's own notifications.
Then one more instance joins (a restart or a scale-out on a typhoon night): how long until the retained
status of every camera is replayed to it and stored, and how many copies it received and dropped.
A second receiver groups (`--group-by hazard,area`, `group_wait_s` 5, 10 km areas): how many messages
carry the burst's 1,000 incidents to it, each incident in exactly one.

Everything is real: Mosquitto, `hazardwatch central` processes on PostgreSQL (SQLite when PostgreSQL is
unreachable; then only one instance), paho clients, an aiohttp receiver. Central RSS is sampled every
half second. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from hazardwatch.harness.central_proc import CentralProcess, alert_payload, write_central_config
from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database
from hazardwatch.harness.mosquitto import MosquittoBroker
from hazardwatch.harness.receiver import Receiver

HAZARDS = ["waterlogging"] * 6 + ["fallen_tree"] * 3 + ["smoke"]
DISTRICT = (22.50, 113.90)  # south-west corner; cameras on a grid over ~30 km x 30 km


@dataclass(frozen=True)
class Camera:
    edge: str
    cam: str
    lat: float
    lon: float


def fleet(cameras: int, edges: int) -> list[Camera]:
    side = int(cameras**0.5) + 1
    step = 0.27 / side  # degrees: ~30 km / side, so ~150 m between cameras at 40,000
    out = []
    for k in range(cameras):
        out.append(Camera(f"edge-{k % edges:04d}", f"cam-{k:05d}", DISTRICT[0] + (k // side) * step,
                          DISTRICT[1] + (k % side) * step))
    return out


class Edge:
    """One simulated edge: its own connection, last will, and per-edge alert sequence."""

    def __init__(self, edge_id: str, port: int) -> None:
        self.edge_id = edge_id
        self.seq = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{edge_id}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.will_set(f"hazardwatch/v1/{edge_id}/availability", self._availability("offline"), qos=1,
                             retain=True)
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()

    def _availability(self, state: str) -> bytes:
        return json.dumps({"schema_version": 1, "kind": "availability", "edge_id": self.edge_id,
                           "sent_at": time.time(), "state": state}).encode()

    def publish(self, topic: str, doc: dict | bytes, *, retain: bool = False, qos: int = 1) -> mqtt.MQTTMessageInfo:
        raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return self.client.publish(f"hazardwatch/v1/{self.edge_id}/{topic}", raw, qos=qos, retain=retain)

    def online(self) -> None:
        self.publish("availability", self._availability("online"), retain=True)

    def status(self, cam: str, state: str) -> mqtt.MQTTMessageInfo:
        now = time.time()
        return self.publish(f"cameras/{cam}/status", {
            "schema_version": 1, "kind": "camera_status", "edge_id": self.edge_id, "sent_at": now,
            "camera_id": cam, "state": state, "reason": "" if state == "online" else "no frame for 15 s",
            "since": now, "last_frame_at": now if state == "online" else now - 15}, retain=True)

    def heartbeat(self, cameras: int) -> None:
        self.publish("heartbeat", {"schema_version": 1, "kind": "heartbeat", "edge_id": self.edge_id,
                                   "sent_at": time.time(), "uptime_s": 3600, "cameras_total": cameras,
                                   "cameras_online": cameras, "outbox_depth": 0,
                                   "models": {"waterlogging-nc12": "1.0.0"}}, qos=0)

    def alert(self, cam: Camera, state: str, hazard: str, score: float) -> mqtt.MQTTMessageInfo:
        with self.lock:
            seq = self.seq
            self.seq += 1
        doc = alert_payload(seq, edge=self.edge_id, cam=cam.cam, alert_id=f"a-{cam.cam}-{hazard}", state=state,
                            hazard=hazard, lat=cam.lat, lon=cam.lon, score=score)
        if state == "end":
            doc.pop("snapshot_jpeg_b64", None)
        return self.publish(f"alerts/{cam.cam}", doc)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def metric(central: CentralProcess, kind: str, result: str = "stored") -> float:
    prefix = f'hazardwatch_central_messages_total{{kind="{kind}",result="{result}"}}'
    for line in central.request("GET", "/metrics", token=None)[1].splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


class RssSampler(threading.Thread):
    def __init__(self, centrals: list[CentralProcess]) -> None:
        super().__init__(daemon=True)
        self.centrals, self.peak = centrals, 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for c in self.centrals:
                try:
                    text = Path(f"/proc/{c.proc.pid}/status").read_text()  # type: ignore[union-attr]
                except OSError:
                    continue
                for line in text.splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]) / 1024)
            self.stop_event.wait(0.5)


def wait_for(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_phase(args: argparse.Namespace, instances: int, db_kind: str, tmp: Path) -> dict:
    cams = fleet(args.cameras, args.edges)
    by_edge: dict[str, list[Camera]] = {}
    for c in cams:
        by_edge.setdefault(c.edge, []).append(c)
    rng = random.Random(7)
    with ExitStack() as stack:
        broker = stack.enter_context(MosquittoBroker(workdir=tmp / f"mq-{instances}"))
        url = stack.enter_context(temporary_database(db_kind, tmp / f"db-{instances}"))
        receiver = stack.enter_context(Receiver(secret="s3cret"))
        centrals = []

        def start_central(name: str) -> CentralProcess:
            hook = {"kind": "webhook", "secret": {"value": "s3cret"}, "timeout_s": 2,
                    "backoff": {"initial_s": 0.2, "max_s": 1, "jitter": 0.1}}
            grouped = {"name": "platform", "url": receiver.url("/grouped"), **hook, "group_by": args.group_by,
                       "group_wait_s": args.group_wait_s, "group_interval_s": 30, "group_area_km": 10}
            cfg = write_central_config(
                tmp / f"{name}.yaml", broker_port=broker.port, database_url=url, receiver_url=receiver.url("/hook"),
                instance_id=name, timers={"group_wait_s": 0, "group_interval_s": 30, "repeat_interval_s": 3600},
                receivers=[{"name": "cmd", "url": receiver.url("/hook"), **hook}, *([grouped] * bool(args.group_by))],
                # incidents stay per camera: cameras are ~150 m apart on the grid
                correlation={"cross_camera_distance_km": 0.05},
            )
            central = CentralProcess(cfg, tmp / f"{name}.log").start()
            stack.callback(central.stop)
            return central

        for k in range(instances):
            centrals.append(start_central(f"fleet-{instances}-{k}"))
        sampler = RssSampler(centrals)
        sampler.start()
        stack.callback(sampler.stop_event.set)

        # 1. fleet start: connections, availability, 40,000 retained camera statuses
        t0 = time.monotonic()
        edges = {e: Edge(e, broker.port) for e in by_edge}
        for e in edges.values():
            stack.callback(e.close)
        wait_for(lambda: all(e.client.is_connected() for e in edges.values()), 60, "edges connected")
        for eid, e in edges.items():
            e.online()
            for c in by_edge[eid]:
                e.status(c.cam, "online")
        # Live statuses come through the shared subscription: each is stored by one of the instances.
        absorb = wait_for(lambda: sum(metric(c, "camera_status") for c in centrals) >= len(cams), 300,
                          "the centrals to store every camera status")
        start_s = time.monotonic() - t0
        stop_beats = threading.Event()

        def beats() -> None:
            ids = list(edges)
            k = 0
            while not stop_beats.is_set():  # one edge every 30 s / edges: a 30 s heartbeat per edge
                edges[ids[k % len(ids)]].heartbeat(len(by_edge[ids[k % len(ids)]]))
                k += 1
                stop_beats.wait(30 / len(ids))

        threading.Thread(target=beats, daemon=True).start()
        stack.callback(stop_beats.set)

        # 2. typhoon burst: alerts as fast as the fleet publishes, 5 % of cameras flapping meanwhile
        burst = rng.sample(cams, args.burst_cameras)
        flapping = rng.sample(cams, len(cams) // 20)
        first_pub: dict[tuple[str, str], float] = {}
        before = sum(metric(c, "alert") for c in centrals)
        events = [(c, s) for s in ("new", "update", "end") for c in burst]
        burst_start = time.monotonic()
        for n, (c, state) in enumerate(events):
            hazard = HAZARDS[hash(c.cam) % len(HAZARDS)]
            if state == "new":
                first_pub[(c.edge, c.cam)] = time.time()
            edges[c.edge].alert(c, state, hazard, {"new": 0.7, "update": 0.85, "end": 0.85}[state])
            if n % 3 == 0 and n // 3 < len(flapping):
                f = flapping[n // 3]
                edges[f.edge].status(f.cam, "offline")
        for f in flapping:
            edges[f.edge].status(f.cam, "online")
        publish_s = time.monotonic() - burst_start
        drain = wait_for(lambda: sum(metric(c, "alert") for c in centrals) - before >= len(events), 600,
                         "the burst stored")
        burst_s = time.monotonic() - burst_start
        sustained = len(events) / burst_s
        wait_for(lambda: len({json.loads(r.body)["incident"]["id"] for r in receiver.accepted("/hook")
                              if json.loads(r.body)["msg_type"] == "Alert"}) >= len(burst), 300,
                 "every burst incident notified")
        burst_lat: list[float] = []
        stored_lat: list[float] = []  # publish -> the incident opened in the store
        for r in receiver.accepted("/hook"):
            body = json.loads(r.body)
            cam = body["incident"]["cameras"][0]
            if body["msg_type"] == "Alert" and (cam["edge_id"], cam["camera_id"]) in first_pub:
                burst_lat.append(r.at - first_pub[(cam["edge_id"], cam["camera_id"])])
                stored_lat.append(body["incident"]["opened_at"] - first_pub[(cam["edge_id"], cam["camera_id"])])
        incidents = centrals[0].get("/api/v1/incidents?limit=1")["total"]
        grouped_ids: set[int] = set()
        if args.group_by:  # the same burst to a grouping receiver: a handful of messages, every incident in one

            def burst_grouped() -> bool:
                grouped_ids.clear()
                for r in receiver.accepted("/grouped"):
                    grouped_ids.update(n["incident"]["id"] for n in json.loads(r.body)["notifications"])
                return len(grouped_ids) >= len(burst)

            wait_for(burst_grouped, 120, "every burst incident in a grouped message")
        grouped_messages = len(receiver.accepted("/grouped"))

        # 3. nominal typhoon rate: new incidents at a steady rate, publish -> receiver 2xx
        burst_set = set(burst)
        quiet = [c for c in cams if c not in burst_set]
        nominal = rng.sample(quiet, int(args.nominal_rate * args.nominal_s))
        sent: dict[tuple[str, str], float] = {}
        seen_before = len(receiver.accepted("/hook"))
        for c in nominal:
            sent[(c.edge, c.cam)] = time.time()
            edges[c.edge].alert(c, "new", "waterlogging", 0.8)
            time.sleep(1 / args.nominal_rate)
        wait_for(lambda: len(receiver.accepted("/hook")) - seen_before >= len(nominal), 120, "nominal notifications")
        lat = []
        for r in receiver.accepted("/hook")[seen_before:]:
            cam = json.loads(r.body)["incident"]["cameras"][0]
            if (cam["edge_id"], cam["camera_id"]) in sent:
                lat.append(r.at - sent[(cam["edge_id"], cam["camera_id"])])
        sampler.stop_event.set()
        shares = [metric(c, "alert") for c in centrals]
        dupes = [json.loads(r.body)["idempotency_key"] for r in receiver.accepted()]  # both receivers

        # 4. an instance joining mid-night (a restart, a scale-out): the retained state replayed to it
        t1 = time.monotonic()
        late = start_central(f"fleet-{instances}-late")
        wait_for(lambda: metric(late, "camera_status") >= len(cams), 300, "the late instance's replay")
        replay_s = time.monotonic() - t1
        replay_copies = metric(late, "camera_status", "taken_once")
        return {
            "instances": instances,
            "database": db_kind,
            "fleet_start_s": round(start_s, 1),
            "statuses_absorbed_per_s": round(len(cams) / max(absorb, 1e-9), 0),  # each stored once
            "burst_alert_events": len(events),
            "burst_publish_s": round(publish_s, 1),
            "burst_stored_s": round(burst_s, 1),
            "drain_after_publish_s": round(drain, 1),
            "alerts_per_s_sustained": round(sustained, 1),
            "incidents": incidents,
            "incidents_expected": len(burst),
            "alerts_per_instance": shares,
            "p50_notify_s": round(statistics.median(lat), 3) if lat else None,
            "p99_notify_s": round(percentile(lat, 0.99), 3),
            "p99_notify_burst_s": round(percentile(burst_lat, 0.99), 3),
            "p99_burst_stored_s": round(percentile(stored_lat, 0.99), 3),
            "notifications": len(dupes),
            "grouped_messages_for_the_burst": grouped_messages,
            "grouped_incidents": len(grouped_ids),
            "duplicate_keys": len(dupes) - len(set(dupes)),
            "central_rss_mb": round(sampler.peak, 1),
            "late_instance_replay_s": round(replay_s, 1),  # start -> every camera's retained status stored
            "late_instance_replay_copies": replay_copies,  # statuses it received twice and dropped
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=40_000)
    ap.add_argument("--edges", type=int, default=300)
    ap.add_argument("--burst-cameras", type=int, default=800, help="cameras alerting in the typhoon burst")
    ap.add_argument("--nominal-rate", type=float, default=10.0, help="new incidents per second, latency phase")
    ap.add_argument("--nominal-s", type=float, default=10.0)
    ap.add_argument("--instances", default="1,2")
    ap.add_argument("--group-by", type=lambda v: [x for x in v.split(",") if x], default=["hazard", "area"],
                    help="labels of a second, grouping receiver (empty: none)")
    ap.add_argument("--group-wait-s", type=float, default=5.0)
    ap.add_argument("--database", choices=["auto", "postgres", "sqlite"], default="auto")
    args = ap.parse_args()
    db_kind = args.database
    if db_kind == "auto":
        reason = postgres_unavailable_reason()
        db_kind = "sqlite" if reason else "postgres"
        if reason:
            print(f"PostgreSQL unreachable ({reason}); SQLite, one instance only", flush=True)
    counts = [int(x) for x in args.instances.split(",")]
    if db_kind == "sqlite":
        counts = [1]
    results = []
    with tempfile.TemporaryDirectory(prefix="hw-fleet-") as tmp:
        for n in counts:
            started = time.monotonic()
            r = run_phase(args, n, db_kind, Path(tmp))
            r["phase_s"] = round(time.monotonic() - started, 1)
            print(json.dumps(r), flush=True)
            results.append(r)
    best = max(results, key=lambda r: r["alerts_per_s_sustained"])
    summary = {
        "cameras": args.cameras,
        "edges": args.edges,
        "database": db_kind,
        "alerts_per_s_sustained": results[0]["alerts_per_s_sustained"],
        "alerts_per_s_sustained_by_instances": {str(r["instances"]): r["alerts_per_s_sustained"] for r in results},
        "p99_notify_s": results[0]["p99_notify_s"],
        "p99_notify_burst_s": results[0]["p99_notify_burst_s"],
        "central_rss_mb": max(r["central_rss_mb"] for r in results),
        "incidents_ok": all(
            r["incidents"] == r["incidents_expected"] and r["grouped_incidents"] in (0, r["incidents_expected"])
            for r in results
        ),
        "grouped_messages_for_the_burst": results[0]["grouped_messages_for_the_burst"],
        "duplicate_keys": sum(r["duplicate_keys"] for r in results),
        "best_instances": best["instances"],
        "phases": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
