"""Cheap per-frame measures for camera diagnosis, computed on one downscaled copy of the frame.

Why these measures: every look's frame is already decoded, so diagnosis must cost well under 2 ms
on top of it. One two-stage downscale (nearest to twice the analysis size, then area averaging)
makes a small BGR and grey copy; everything else is a few small filters on those.

The measures are chosen to be invariant to fog, haze and exposure where the diagnosis must be:
- sharpness is a *ratio* of two band-pass energies (fine / medium detail). Fog and exposure scale
  both bands alike (an affine change of intensities), so the ratio stays; defocus removes the fine
  band first, so the ratio falls.
- structure is the gradient magnitude divided by its local mean, so faint edges seen through haze
  weigh as much as crisp ones; it is compared with the reference for alignment and shift.
- texture per block (8 x 6 grid) tells which parts of the view lost all detail (a cover) from
  which only lost contrast (fog: the near blocks keep theirs).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GRID = (8, 6)  # blocks across, down
STRUCT_SIZE = (80, 60)  # structure map for alignment and phase correlation
THUMB_SIZE = (160, 120)  # kept from the last look to recognise a frozen stream
ANALYSIS_WIDTH = 320


@dataclass(frozen=True)
class FrameFeatures:
    """What one look's frame measured; arrays are small (at most 80 x 60)."""

    mean: float  # grey level 0..255
    std: float
    dark_frac: float  # share of pixels darker than 24
    bright_frac: float  # share of pixels at 240 or more (clipped highlights, after the codec)
    p01: float  # 1st percentile grey level
    p99: float  # 99th percentile grey level
    saturation: float  # mean max(B,G,R) - min(B,G,R); ~0 in IR / greyscale mode
    fine: float  # mean fine-band energy (grey levels)
    medium: float  # mean medium-band energy
    block_mean: np.ndarray  # GRID grey means, shape (6, 8)
    block_texture: np.ndarray  # GRID medium-band energy, shape (6, 8)
    block_fine: np.ndarray  # GRID fine-band energy, shape (6, 8)
    block_saturation: np.ndarray  # GRID colourfulness, shape (6, 8)
    structure: np.ndarray  # STRUCT_SIZE normalised gradient map, zero mean, unit norm (60, 80)
    thumb: np.ndarray  # THUMB_SIZE grey uint8 (frozen-frame comparison)

    @property
    def sharpness(self) -> float:
        """Fine / medium band energy: falls with defocus, unchanged by fog or exposure."""
        return self.fine / max(self.medium, 1e-3)

    @property
    def block_sharpness(self) -> np.ndarray:
        """Sharpness per block, so a large object entering one part of the view does not move it."""
        return self.block_fine / np.maximum(self.block_texture, 1e-3)


def shrink_to_width(image: np.ndarray, width: int = ANALYSIS_WIDTH) -> np.ndarray:
    """Area-average to `width` columns; a nearest-neighbour pre-step keeps a 4K frame cheap."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    tw, th = width, max(2, round(h * width / w))
    if w > 2 * tw:
        image = cv2.resize(image, (2 * tw, 2 * th), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)


def analyse(image: np.ndarray, width: int = ANALYSIS_WIDTH) -> FrameFeatures:
    """Measure one BGR (or grey) uint8 frame."""
    small = shrink_to_width(image, width)
    if small.ndim == 2:
        grey_u8 = small
        colour = None
    else:
        grey_u8 = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        colour = small
    grey = grey_u8.astype(np.float32)
    mean, std = cv2.meanStdDev(grey)
    hist = cv2.calcHist([grey_u8], [0], None, [256], [0, 256]).ravel()
    total = float(grey_u8.size)
    dark_frac = float(hist[:24].sum()) / total
    bright_frac = float(hist[240:].sum()) / total
    cdf = np.cumsum(hist) / total
    p01 = float(np.searchsorted(cdf, 0.01))
    p99 = float(np.searchsorted(cdf, 0.99))

    b1 = cv2.GaussianBlur(grey, (0, 0), 1.0)
    b2 = cv2.GaussianBlur(b1, (0, 0), 1.7)
    fine_map = cv2.absdiff(grey, b1)
    medium_map = cv2.absdiff(b1, b2)
    block_texture = cv2.resize(medium_map, GRID, interpolation=cv2.INTER_AREA)
    block_fine = cv2.resize(fine_map, GRID, interpolation=cv2.INTER_AREA)
    block_mean = cv2.resize(grey, GRID, interpolation=cv2.INTER_AREA)

    if colour is not None:
        c = cv2.resize(colour, STRUCT_SIZE, interpolation=cv2.INTER_AREA)
        chroma = (c.max(axis=2).astype(np.float32) - c.min(axis=2)).astype(np.float32)
    else:
        chroma = np.zeros(STRUCT_SIZE[::-1], np.float32)
    block_saturation = cv2.resize(chroma, GRID, interpolation=cv2.INTER_AREA)

    thumb = cv2.resize(grey_u8, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return FrameFeatures(
        mean=float(mean[0, 0]),
        std=float(std[0, 0]),
        dark_frac=dark_frac,
        bright_frac=bright_frac,
        p01=p01,
        p99=p99,
        saturation=float(chroma.mean()),
        fine=float(fine_map.mean()),
        medium=float(medium_map.mean()),
        block_mean=block_mean,
        block_texture=block_texture,
        block_fine=block_fine,
        block_saturation=block_saturation,
        structure=structure_map(b1),
        thumb=thumb,
    )


def structure_map(grey: np.ndarray) -> np.ndarray:
    """Gradient magnitude over its local mean at STRUCT_SIZE, zero mean and unit norm.

    The local normalisation makes hazy, low-contrast edges count like crisp ones, so alignment with
    the reference survives fog; the small floor keeps pure noise in flat areas (sky) low.
    """
    half = cv2.resize(grey, (STRUCT_SIZE[0] * 2, STRUCT_SIZE[1] * 2), interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(half, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(half, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    local = cv2.blur(mag, (15, 15))
    norm = mag / (local + 6.0)
    m = cv2.resize(norm, STRUCT_SIZE, interpolation=cv2.INTER_AREA)
    m -= m.mean()
    n = float(np.linalg.norm(m))
    return m / n if n > 1e-6 else m


def block_correlation(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Per-block (GRID) correlation of two structure maps: does each part of the view still match?"""
    gw, gh = GRID
    h, w = reference.shape
    a = reference[: h - h % gh, : w - w % gw].reshape(gh, h // gh, gw, w // gw)
    b = current[: h - h % gh, : w - w % gw].reshape(gh, h // gh, gw, w // gw)
    a = a - a.mean(axis=(1, 3), keepdims=True)
    b = b - b.mean(axis=(1, 3), keepdims=True)
    num = (a * b).sum(axis=(1, 3))
    den = np.sqrt((a * a).sum(axis=(1, 3)) * (b * b).sum(axis=(1, 3)))
    return np.where(den > 1e-9, num / np.maximum(den, 1e-9), 0.0).astype(np.float32)


def align(reference: np.ndarray, current: np.ndarray, window: np.ndarray) -> tuple[float, float, float, float]:
    """Return (zero-shift correlation, dx, dy, phase-correlation response) of two structure maps.

    dx, dy are in structure-map pixels (80 across); a response well above ~0.1 means a clear peak.
    """
    corr0 = float((reference * current).sum())
    # phaseCorrelate applies the window in place: hand it copies.
    (dx, dy), response = cv2.phaseCorrelate(reference.copy(), current.copy(), window)
    return corr0, float(dx), float(dy), float(response)


def shifted_correlation(reference: np.ndarray, current: np.ndarray, dx: float, dy: float) -> float:
    """Correlation of the overlapping part after undoing an integer shift (dx, dy)."""
    ix, iy = round(dx), round(dy)
    h, w = reference.shape
    if abs(ix) >= w // 2 or abs(iy) >= h // 2:
        return 0.0
    ref = reference[max(0, -iy) : h - max(0, iy), max(0, -ix) : w - max(0, ix)]
    cur = current[max(0, iy) : h - max(0, -iy), max(0, ix) : w - max(0, -ix)]
    a = ref - ref.mean()
    b = cur - cur.mean()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float((a * b).sum()) / den if den > 1e-9 else 0.0


def hanning(size: tuple[int, int] = STRUCT_SIZE) -> np.ndarray:
    """The window phase correlation uses (created once per diagnoser, not per frame)."""
    return cv2.createHanningWindow(size, cv2.CV_32F)
