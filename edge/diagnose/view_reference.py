"""What one camera usually looks like in one mode (day colour or night IR): the diagnoser's reference.

An exponential average over healthy looks, so slow changes (daylight, seasons) are absorbed while a
sudden change stands out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hazardwatch.edge.diagnose.features import FrameFeatures


@dataclass
class ViewReference:
    """What this camera usually looks like in one mode (day colour or night IR)."""

    looks: int
    structure: np.ndarray
    block_texture: np.ndarray
    block_mean: np.ndarray
    block_saturation: np.ndarray
    sharpness: float
    block_sharpness: np.ndarray
    block_fine: np.ndarray
    mean: float
    usual_corr: float | None = None
    block_corr: np.ndarray | None = None  # how well each block usually matches (noise-only blocks do not)

    @classmethod
    def first(cls, f: FrameFeatures) -> ViewReference:
        return cls(
            1,
            f.structure.copy(),
            f.block_texture.copy(),
            f.block_mean.copy(),
            f.block_saturation.copy(),
            f.sharpness,
            f.block_sharpness.copy(),
            f.block_fine.copy(),
            f.mean,
        )

    def update(self, f: FrameFeatures, rate: float, corr0: float | None, bcorr: np.ndarray | None) -> None:
        a = max(rate, 1.0 / (self.looks + 1))
        self.looks += 1
        self.structure = (1 - a) * self.structure + a * f.structure
        self.structure -= self.structure.mean()
        norm = float(np.linalg.norm(self.structure))
        if norm > 1e-6:
            self.structure /= norm
        self.block_texture = (1 - a) * self.block_texture + a * f.block_texture
        self.block_mean = (1 - a) * self.block_mean + a * f.block_mean
        self.block_saturation = (1 - a) * self.block_saturation + a * f.block_saturation
        self.sharpness = (1 - a) * self.sharpness + a * f.sharpness
        self.block_sharpness = (1 - a) * self.block_sharpness + a * f.block_sharpness
        self.block_fine = (1 - a) * self.block_fine + a * f.block_fine
        if bcorr is not None:
            self.block_corr = bcorr.copy() if self.block_corr is None else 0.8 * self.block_corr + 0.2 * bcorr
        self.mean = (1 - a) * self.mean + a * f.mean
        if corr0 is not None:
            c = min(1.0, max(0.3, corr0))
            self.usual_corr = c if self.usual_corr is None else 0.9 * self.usual_corr + 0.1 * c
