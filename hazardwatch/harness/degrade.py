"""Degraded versions of real frames for the camera-diagnosis tests and benchmark.

Each function takes a BGR uint8 frame and returns a new one. `look` adds what differs between two
looks at an unchanged scene (sensor noise, a little exposure drift, JPEG compression), so a
sequence of looks is never bit-identical unless the stream is really frozen.
"""

from __future__ import annotations

import cv2
import numpy as np


def look(img: np.ndarray, rng: np.random.Generator, noise: float = 2.0, quality: int = 85) -> np.ndarray:
    """One look at the scene: sensor noise, exposure drift of a few per cent, JPEG round trip."""
    gain = rng.uniform(0.96, 1.04)
    out = img.astype(np.float32) * gain + rng.normal(0.0, noise, img.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise RuntimeError("OpenCV could not round-trip a frame through JPEG")
    return decoded


def blur(img: np.ndarray, sigma_frac: float) -> np.ndarray:
    """Defocus-like Gaussian blur; sigma as a share of the width (0.005 = 3.2 px at 640)."""
    sigma = sigma_frac * img.shape[1]
    return cv2.GaussianBlur(img, (0, 0), sigma)


def cover(
    img: np.ndarray,
    frac: float,
    rng: np.random.Generator,
    colour: tuple[int, int, int] | None = None,
    side: str = "left",
) -> np.ndarray:
    """An object at the lens over `frac` of the view from one side: nearly uniform, out of focus."""
    h, w = img.shape[:2]
    out = img.copy()
    r, g, b = (int(c) for c in rng.integers(10, 70, 3))
    colour = colour or (r, g, b)
    layer = np.empty_like(img)
    layer[:] = colour
    shade = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), w / 20)
    layer = np.clip(layer.astype(np.float32) + shade[..., None] * 3, 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.float32)
    if frac >= 1.0:
        mask[:] = 1
    elif side in ("left", "right"):
        cut = round(w * frac)
        if side == "left":
            mask[:, :cut] = 1
        else:
            mask[:, w - cut :] = 1
    elif side in ("top", "bottom"):
        cut = round(h * frac)
        if side == "top":
            mask[:cut] = 1
        else:
            mask[h - cut :] = 1
    else:  # "blob": an ellipse in the middle (a leaf, a bag)
        area = frac * h * w
        a = np.sqrt(area / np.pi * 1.4)
        b = area / (np.pi * a)
        cv2.ellipse(mask, (w // 2, h // 2), (int(a), int(b)), 15, 0, 360, 1.0, -1)
    soft_mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, w / 160))[..., None]
    return (out * (1 - soft_mask) + layer * soft_mask).astype(np.uint8)


def shift(img: np.ndarray, dx_frac: float, dy_frac: float = 0.0, angle_deg: float = 0.0) -> np.ndarray:
    """The camera turned: translate and rotate the view (new content at the edges mirrored in)."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    m[0, 2] += dx_frac * w
    m[1, 2] += dy_frac * h
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def black(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Video loss or a lens cap: near-black with a little noise."""
    noise = rng.normal(6, 2, img.shape)
    return np.clip(noise, 0, 255).astype(np.uint8)


def overexpose(img: np.ndarray, gain: float) -> np.ndarray:
    """Blinded by the sun or a lamp: exposure multiplied and clipped."""
    return np.clip(img.astype(np.float32) * gain + 40, 0, 255).astype(np.uint8)


def fog(img: np.ndarray, density: float, airlight: float = 200.0) -> np.ndarray:
    """Fog or haze: a blend toward grey airlight, denser toward the top of the view (farther away).

    Transmission t = exp(-density * depth) with depth from 1 (bottom) to 3 (top), the usual
    atmospheric scattering model with a depth ramp standing in for a depth map.
    """
    h, _w = img.shape[:2]
    depth = np.linspace(3.0, 1.0, h, dtype=np.float32)[:, None, None]
    t = np.exp(-density * depth)
    out = img.astype(np.float32) * t + airlight * (1 - t)
    return np.clip(out, 0, 255).astype(np.uint8)


def uniform_fog(img: np.ndarray, keep: float, airlight: float = 190.0) -> np.ndarray:
    """Even fog over the whole view: only `keep` of the contrast is left."""
    out = img.astype(np.float32) * keep + airlight * (1 - keep)
    return np.clip(out, 0, 255).astype(np.uint8)


def rain(img: np.ndarray, rng: np.random.Generator, streaks: int = 600) -> np.ndarray:
    """Heavy rain: bright slanted streaks, lower contrast and a little softness."""
    h, w = img.shape[:2]
    out = uniform_fog(img, 0.75, 160.0)
    layer = np.zeros((h, w), np.float32)
    for _ in range(streaks):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        length = int(rng.integers(h // 30, h // 10))
        cv2.line(layer, (x, y), (x + length // 4, y + length), 1.0, 1)
    streak = cv2.GaussianBlur(layer, (0, 0), 0.8)[..., None]
    out = out.astype(np.float32) * (1 - 0.35 * streak) + 230 * 0.35 * streak
    return cv2.GaussianBlur(np.clip(out, 0, 255).astype(np.uint8), (0, 0), 0.6)


def greyscale(img: np.ndarray) -> np.ndarray:
    """Night / IR mode: the camera switched to a monochrome image."""
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)


def dirt(img: np.ndarray, rng: np.random.Generator, blobs: int = 10, size: float = 0.12) -> np.ndarray:
    """Mud or bird droppings on the lens: dark, semi-opaque, out-of-focus blotches."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(blobs):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        r = int(w * size * rng.uniform(0.5, 1.2))
        cv2.ellipse(
            mask,
            c,
            (r, int(r * rng.uniform(0.5, 1.0))),
            float(rng.uniform(0, 180)),
            0,
            360,
            float(rng.uniform(0.7, 0.95)),
            -1,
        )
    soft_mask = cv2.GaussianBlur(mask, (0, 0), w / 80)[..., None]
    mud = np.array([40, 55, 70], np.float32)
    return np.clip(img * (1 - soft_mask) + mud * soft_mask, 0, 255).astype(np.uint8)


def spray(img: np.ndarray, rng: np.random.Generator, drops: int = 400) -> np.ndarray:
    """Water spray on the lens: many droplets, each a small blurred, brighter lens over the view."""
    h, w = img.shape[:2]
    soft = cv2.GaussianBlur(img, (0, 0), w / 60).astype(np.float32) * 1.1 + 12
    mask = np.zeros((h, w), np.float32)
    for _ in range(drops):
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(w * rng.uniform(0.006, 0.03)), 1.0, -1)
    soft_mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None]
    return np.clip(img * (1 - soft_mask) + soft * soft_mask, 0, 255).astype(np.uint8)
