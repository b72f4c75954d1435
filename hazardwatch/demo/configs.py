"""What the demo runs: its cameras (rendered scenes or the user's sources), models and generated configs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hazardwatch.demo import district
from hazardwatch.demo.brokers import Broker
from hazardwatch.demo.supervisor import DemoError
from hazardwatch.procs import HOST

TOKEN_ENV = "HAZARDWATCH_DEMO_TOKEN"
EDGE_TOKEN_ENV = "HAZARDWATCH_DEMO_EDGE_TOKEN"  # the edge uploads its clips and snapshots with it
ADMIN_TOKEN_ENV = "HAZARDWATCH_DEMO_ADMIN_TOKEN"  # a model maintainer's: the Models tab, rollouts
EDGE_ID = "demo-edge"


@dataclass(frozen=True)
class DemoCamera:
    """One camera of the demo edge: where it looks and what it plays."""

    id: str
    name: str
    source: str
    lat: float
    lon: float
    bearing_deg: float
    interval_s: float


# The rendered scenes' cameras sit far enough apart (> 15 km) that each fire is its own incident.
SCENE_CAMERAS: tuple[tuple[str, str, float, float, float], ...] = (
    ("hillside", "Wutong hillside tower", 22.6000, 114.1900, 40.0),
    ("valley", "Yangtai valley mast", 22.6600, 113.9300, 300.0),
    ("reservoir", "Shenzhen reservoir dam", 22.5600, 114.1300, 90.0),
)


DEMO_FOLDER = "demo"  # hand-built graphs for the rendered scenes, never for a user's footage


def shipped_models(demo_only: bool = False) -> dict[str, Path]:
    """Hazard -> manifest of the models shipped in hazardwatch.models that load: ONNX ones only (the
    scene-change fallen-tree detector needs minutes of persistence), not those disabled by default
    (too many false alarms on scenes unlike their data), int8 preferred where both exist.

    `demo_only`: the hand-built demo graphs instead (the red-patch "fire" model scores anything red or
    orange, so an orange lorry on real footage would be a fire): they run on the rendered scenes only."""
    from importlib import resources

    from hazardwatch.manifest import ManifestError, verify_model_file

    root = Path(str(resources.files("hazardwatch.models")))
    found: dict[str, tuple[bool, Path]] = {}
    for manifest in sorted(root.glob("*/*.json")):
        if (manifest.parent.name == DEMO_FOLDER) != demo_only:
            continue
        try:
            spec, _ = verify_model_file(manifest)
        except (ManifestError, OSError, ValueError):
            continue
        if spec.runtime != "onnx" or not spec.enabled_by_default:  # off unless a site names it in its config
            continue
        hazard = spec.hazard.value
        int8 = spec.precision == "int8"
        if hazard not in found or (int8 and not found[hazard][0]):
            found[hazard] = (int8, manifest)
    return {hazard: path for hazard, (_, path) in found.items()}


def central_config(broker: Broker, port: int, workdir: Path) -> dict[str, Any]:
    return {
        "instance_id": "demo-central",
        "site": "hazardwatch demo",
        "timezone": district.SITE_TZ,
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "protocol": broker.protocol,
            "shared_subscription": broker.protocol == "5",
            "client_id": f"hazardwatch-demo-central-{os.getpid()}",
        },
        "database": {"url": f"sqlite:///{workdir / 'central.db'}"},
        "http": {"host": HOST, "port": port},
        "auth": {
            "tokens": [
                {"name": "demo-operator", "role": "operator", "token": {"env": TOKEN_ENV}},
                {"name": "demo-admin", "role": "admin", "token": {"env": ADMIN_TOKEN_ENV}},
                {"name": EDGE_ID, "role": "edge", "token": {"env": EDGE_TOKEN_ENV}},
            ]
        },
        "timers": {"group_wait_s": 1, "group_interval_s": 10, "repeat_interval_s": 3600},
        "receivers": [],
        "routes": [],
        "map": district.map_section(),
        "weather": district.weather_section(),
    }


# The rendered scenes look out from a tower over open ground: how far along the view a hazard is.
SCENE_HEIGHT = {"height_m": 35.0, "tilt_deg": 2.0, "view_range_m": [150.0, 6000.0]}


def edge_config(
    broker: Broker,
    cameras: list[DemoCamera],
    models: dict[str, Path],
    workdir: Path,
    scene_hazards: list[str],
    central_url: str,
) -> dict[str, Any]:
    """The edge's config: rendered scenes run the models that detect on them, --source cameras run all; clips
    and snapshots of its alerts are uploaded to the demo's central, so the dashboard plays them."""
    hazards_for = {cam.id: scene_hazards if cam.id.startswith("scene-") else list(models) for cam in cameras}
    used = {h: path for h, path in models.items() if any(h in hs for hs in hazards_for.values())}
    return {
        "edge_id": EDGE_ID,
        "site": "hazardwatch demo",
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "protocol": broker.protocol,
            "client_id": f"hazardwatch-demo-edge-{os.getpid()}",
        },
        "patrol": {"burst_interval_s": 1, "phase_jitter_s": 0, "offline_after_s": 20},
        # A quick vote so the first incident comes within seconds of the flames (2 of the last 3 looks).
        "confirm": {h: {"window": 3, "min_votes": 2, "threshold": 0.5, "end_after_s": 30} for h in used},
        "models": [{"manifest": str(path), "threads": 1} for path in used.values()],
        "cameras": [
            {
                "id": cam.id,
                "name": cam.name,
                "source": cam.source,
                "mode": "snapshot",
                "location": {"lat": cam.lat, "lon": cam.lon},
                "bearing_deg": cam.bearing_deg,
                "fov_deg": 60,
                **(SCENE_HEIGHT if cam.id.startswith("scene-") else {}),
                "hazards": {h: {"interval_s": cam.interval_s} for h in hazards_for[cam.id]},
            }
            for cam in cameras
        ],
        "outbox": {"path": str(workdir / "edge-outbox.db")},
        "central": {"url": central_url, "token": {"env": EDGE_TOKEN_ENV}},
        "http": {"host": HOST, "port": 0},
        "heartbeat_s": 10,
        # A field edge spaces the looks a camera learns its normal from by 2 minutes (half an hour to a
        # ready reference); the demo learns every 5 s so a newcomer sees it within a couple of minutes.
        "reference": {"min_interval_s": 5},
    }


def scene_cameras(workdir: Path) -> list[DemoCamera]:
    """Render the project's own scenes, one folder (and one camera) each."""
    from hazardwatch.edge.demo_scene import write_scene

    cams = []
    for scene, name, lat, lon, bearing in SCENE_CAMERAS:
        folder = workdir / "scenes" / scene
        write_scene(folder, scene=scene)
        cams.append(DemoCamera(f"scene-{scene}", name, str(folder), lat, lon, bearing, 1.0))
    return cams


def source_cameras(sources: list[str]) -> list[DemoCamera]:
    """Cameras for the user's --source values: video files, image folders or stream URLs."""
    cams = []
    for i, src in enumerate(sources, 1):
        if "://" not in src:
            path = Path(src).expanduser().resolve()
            if not path.exists():
                raise DemoError(f"--source {src}: no such file or folder: pass a video file, an image folder or a URL")
            src = str(path)
        cams.append(DemoCamera(f"source-{i}", f"Source {i}", src, 22.54 + 0.02 * i, 114.06, 90.0, 2.0))
    return cams
