"""Scenes the project renders itself, so the first run needs no third-party video.

Each scene is a landscape under a sky with drifting haze; in most of them a flickering fire appears
for part of every cycle. The shipped demo model (`models/demo/red-patch`) detects the flames, so the
edge really detects something on a fresh machine. `reservoir` never burns: a control camera that
must stay quiet (its colours keep well away from red, so the demo model has nothing to find).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 360


@dataclass(frozen=True)
class Scene:
    """How one demo camera's view looks; colours are BGR."""

    name: str
    sky_top: tuple[int, int, int] = (235, 200, 150)
    sky_bottom: tuple[int, int, int] = (200, 190, 180)
    ground: tuple[int, int, int] = (40, 85, 45)
    ridge_at: float = 0.55  # horizon height as a fraction of the frame
    ridge_amp: float = 25.0
    ridge_phase: float = 0.0
    far_ridge: tuple[int, int, int] | None = None  # a paler ridge behind, for depth
    water: tuple[int, int, int] | None = None  # a lake or river across the foreground
    fire_x: int | None = 420  # None: this scene never burns
    fire_size: float = 1.0
    fire_from: int = 5
    fire_to: int = 17


SCENES: tuple[Scene, ...] = (
    Scene("hillside"),
    Scene(
        "valley",
        sky_top=(225, 190, 160),
        sky_bottom=(190, 185, 185),
        ground=(45, 95, 60),
        ridge_at=0.62,
        ridge_amp=18.0,
        ridge_phase=2.0,
        far_ridge=(120, 130, 120),
        water=(150, 110, 70),
        fire_x=180,
        fire_size=0.8,
        fire_from=9,
        fire_to=22,
    ),
    Scene(
        "reservoir",
        sky_top=(230, 205, 170),
        sky_bottom=(210, 200, 190),
        ground=(50, 90, 55),
        ridge_at=0.45,
        ridge_amp=30.0,
        ridge_phase=4.0,
        far_ridge=(140, 145, 135),
        water=(160, 120, 80),
        fire_x=None,
    ),
)


def scene_named(name: str) -> Scene:
    """The scene called `name`; ValueError naming the choices otherwise."""
    for scene in SCENES:
        if scene.name == name:
            return scene
    raise ValueError(f"no demo scene {name!r}; choose one of {', '.join(s.name for s in SCENES)}")


def _ridge(scene: Scene, at: float, amp: float, phase: float) -> np.ndarray:
    xs = np.arange(WIDTH)
    return (HEIGHT * at + amp * np.sin(xs / 70.0 + phase) + amp * 0.48 * np.sin(xs / 23.0 + 1 + phase)).astype(np.int32)


def _fill_below(img: np.ndarray, ridge: np.ndarray, color: tuple[int, int, int]) -> None:
    xs = np.arange(WIDTH)
    poly = np.array([[x, r] for x, r in zip(xs, ridge, strict=True)] + [[WIDTH - 1, HEIGHT], [0, HEIGHT]], np.int32)
    cv2.fillPoly(img, [poly], color)


def render_frame(k: int, fire: bool, rng: np.random.Generator, scene: Scene = SCENES[0]) -> np.ndarray:
    """Frame `k` of `scene`, with flames when `fire` (and the scene has a fire spot)."""
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    top, bottom = np.array(scene.sky_top, np.float32), np.array(scene.sky_bottom, np.float32)
    img = np.broadcast_to(top * (1 - y) + bottom * y, (HEIGHT, WIDTH, 3)).copy()
    if scene.far_ridge is not None:
        _fill_below(
            img, _ridge(scene, scene.ridge_at - 0.12, scene.ridge_amp * 0.8, scene.ridge_phase + 1.3), scene.far_ridge
        )
    ridge = _ridge(scene, scene.ridge_at, scene.ridge_amp, scene.ridge_phase)
    _fill_below(img, ridge, scene.ground)
    if scene.water is not None:
        top_y = int(HEIGHT * 0.8)
        cv2.rectangle(img, (0, top_y), (WIDTH - 1, HEIGHT - 1), scene.water, -1)
        for j in range(6):  # ripples that move, so consecutive frames differ like a real view
            yy = top_y + 6 + j * 10
            x0 = int((k * 11 + j * 97) % WIDTH)
            cv2.line(img, (x0, yy), (min(WIDTH - 1, x0 + 60), yy), tuple(min(255, c + 35) for c in scene.water), 2)
    haze_x = int((k * 7) % (WIDTH + 200)) - 100
    cv2.ellipse(img, (haze_x, int(HEIGHT * 0.3)), (90, 18), 0, 0, 360, (225, 225, 225), -1)
    if fire and scene.fire_x is not None:
        cx, cy = scene.fire_x, int(ridge[scene.fire_x]) + 30
        s = scene.fire_size
        for _ in range(6):
            dx, dy = rng.integers(-14, 15), rng.integers(-20, 5)
            color = (0, int(rng.integers(40, 140)), 255)
            axes = (int(rng.integers(8, 16) * s), int(rng.integers(14, 26) * s))
            cv2.ellipse(img, (cx + int(dx * s), cy + int(dy * s)), axes, 0, 0, 360, color, -1)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    noise = rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def write_scene(
    out: Path,
    frames: int = 30,
    fire_from: int | None = None,
    fire_to: int | None = None,
    seed: int = 7,
    scene: Scene | str = "hillside",
) -> list[Path]:
    """Write `frames` JPEGs of `scene`; frames fire_from..fire_to-1 show the fire (the scene's own
    window unless given). The edge replays the folder in a loop, so the fire comes and goes."""
    sc = scene_named(scene) if isinstance(scene, str) else scene
    lo = sc.fire_from if fire_from is None else fire_from
    hi = sc.fire_to if fire_to is None else fire_to
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(frames):
        path = out / f"scene-{k:03d}.jpg"
        cv2.imwrite(str(path), render_frame(k, lo <= k < hi, rng, sc), [cv2.IMWRITE_JPEG_QUALITY, 85])
        paths.append(path)
    return paths
