"""A scene the project renders itself, so the first run needs no third-party video.

A hillside under a sky with drifting haze; a flickering fire appears for a while in each cycle.
The shipped demo model (`models/demo/red-patch`) detects the flames, so the edge really detects
something on a fresh machine.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 360


def render_frame(k: int, fire: bool, rng: np.random.Generator) -> np.ndarray:
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    sky = np.array([235, 200, 150], np.float32) * (1 - y) + np.array([200, 190, 180], np.float32) * y
    img = np.broadcast_to(sky, (HEIGHT, WIDTH, 3)).copy()
    xs = np.arange(WIDTH)
    ridge = (HEIGHT * 0.55 + 25 * np.sin(xs / 70.0) + 12 * np.sin(xs / 23.0 + 1)).astype(np.int32)
    hills = np.array([[x, r] for x, r in zip(xs, ridge, strict=True)] + [[WIDTH - 1, HEIGHT], [0, HEIGHT]], np.int32)
    cv2.fillPoly(img, [hills], (40, 85, 45))
    haze_x = int((k * 7) % (WIDTH + 200)) - 100
    cv2.ellipse(img, (haze_x, int(HEIGHT * 0.3)), (90, 18), 0, 0, 360, (225, 225, 225), -1)
    if fire:
        cx, cy = 420, int(ridge[420]) + 30
        for _ in range(6):
            dx, dy = rng.integers(-14, 15), rng.integers(-20, 5)
            color = (0, int(rng.integers(40, 140)), 255)
            cv2.ellipse(
                img,
                (cx + int(dx), cy + int(dy)),
                (int(rng.integers(8, 16)), int(rng.integers(14, 26))),
                0,
                0,
                360,
                color,
                -1,
            )
    img = cv2.GaussianBlur(img, (3, 3), 0)
    noise = rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def write_scene(out: Path, frames: int = 30, fire_from: int = 5, fire_to: int = 17, seed: int = 7) -> list[Path]:
    """Write `frames` JPEGs; frames fire_from..fire_to-1 show the fire. Replayed in a loop by the edge."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(frames):
        path = out / f"scene-{k:03d}.jpg"
        cv2.imwrite(str(path), render_frame(k, fire_from <= k < fire_to, rng), [cv2.IMWRITE_JPEG_QUALITY, 85])
        paths.append(path)
    return paths
