"""One camera's normal for one hazard and one light mode: per-cell statistics of the model's embedding.

Why mean, spread and maximum: a camera's normal is not one picture. Clouds drift, haze comes and
goes, a flag waves. What tells a new plume from that is how far a cell's embedding now lies outside
the range this cell has shown on quiet looks: its mean, its usual spread (std) and the most it has
reached (max). A reference made only of a mean gained little in measurements (docs/models.md).

Learning has two phases. Until `min_looks` quiet looks are in, the statistics are exact (Welford);
the reference is not used. After that it follows slow change (seasons, vegetation, a repainted wall)
with an exponential horizon of `horizon_looks`, and the maximum relaxes toward the mean over the same
horizon, so a cloud bank seen once in spring does not excuse every cell for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hazardwatch.edge.detect.detector import Detection

STATS = ("mean", "std", "max")


@dataclass
class CellReference:
    """Per-element statistics of an embedding over quiet looks; float32, 3 arrays of its size."""

    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations while learning; the variance once ready
    max: np.ndarray
    looks: int = 0
    absorbed: int = 0  # false alarms an operator taught this reference
    created_at: float = 0.0
    updated_at: float = 0.0
    ready_at: float | None = None
    _last_learnt_at: float | None = field(default=None, repr=False)

    @classmethod
    def empty(cls, shape: tuple[int, ...], at: float) -> CellReference:
        z = np.zeros(shape, np.float32)
        return cls(mean=z.copy(), m2=z.copy(), max=np.full(shape, -np.inf, np.float32), created_at=at, updated_at=at)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.mean.shape)

    @property
    def nbytes(self) -> int:
        return self.mean.nbytes + self.m2.nbytes + self.max.nbytes

    def is_ready(self, min_looks: int) -> bool:
        return self.looks >= min_looks

    def variance(self, min_looks: int) -> np.ndarray:
        if self.is_ready(min_looks):
            return self.m2
        return self.m2 / max(1, self.looks - 1)

    def learn(self, emb: np.ndarray, at: float, min_looks: int, horizon_looks: int) -> None:
        """Fold one quiet look's embedding in."""
        emb = emb.astype(np.float32, copy=False)
        self.looks += 1
        if self.looks <= min_looks:  # exact phase (Welford)
            delta = emb - self.mean
            self.mean += delta / self.looks
            self.m2 += delta * (emb - self.mean)
            np.maximum(self.max, emb, out=self.max)
            if self.looks == min_looks:
                self.m2 /= max(1, self.looks - 1)  # from here on m2 holds the variance
                self.ready_at = at
        else:  # slow phase: exponential horizon
            rate = 1.0 / horizon_looks
            delta = emb - self.mean
            self.mean += rate * delta
            self.m2 += rate * (delta * delta - self.m2)
            self.max -= rate * (self.max - self.mean)
            np.maximum(self.max, emb, out=self.max)
        self.updated_at = at
        self._last_learnt_at = at

    def since_last_learnt(self, at: float) -> float:
        return np.inf if self._last_learnt_at is None else at - self._last_learnt_at

    def absorb(self, emb: np.ndarray, cells: np.ndarray, at: float, min_looks: int) -> None:
        """An operator said these elements (a bool mask broadcastable to the embedding) were normal:
        widen the range there to cover them."""
        emb = emb.astype(np.float32, copy=False)
        sel = np.broadcast_to(cells, emb.shape)
        var = self.variance(min_looks)
        widened = np.maximum(var, (emb - self.mean) ** 2)
        if self.is_ready(min_looks):
            self.m2 = np.where(sel, widened, self.m2).astype(np.float32)
        else:  # keep it in sum-of-squares form while learning
            self.m2 = np.where(sel, widened * max(1, self.looks - 1), self.m2).astype(np.float32)
        self.max = np.where(sel, np.maximum(self.max, emb), self.max).astype(np.float32)
        self.absorbed += 1
        self.updated_at = at

    def stats(self, min_looks: int) -> np.ndarray:
        """mean, std and max concatenated on the first axis: the layout of the model's `reference` input.
        A new array every call, computed in place (about 20 us for 28,800 elements): a cached copy would
        double every reference's memory, and the look that reads it costs a thousand times more."""
        n = self.mean.shape[0]
        out = np.empty((3 * n, *self.mean.shape[1:]), np.float32)
        out[:n] = self.mean
        std = out[n : 2 * n]
        np.maximum(self.variance(min_looks), 0.0, out=std)
        np.sqrt(std, out=std)
        top = out[2 * n :]
        top[...] = self.max
        unset = ~np.isfinite(top)  # cells no look reached yet (an absorb before any learning)
        if unset.any():
            top[unset] = self.mean[unset]
        return out

    # -- persistence (the store writes these arrays; no file I/O here) -----------------------------
    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        ready_at = -1.0 if self.ready_at is None else self.ready_at
        meta = np.array([self.looks, self.absorbed, self.created_at, self.updated_at, ready_at], np.float64)
        return {f"{prefix}mean": self.mean, f"{prefix}m2": self.m2, f"{prefix}max": self.max, f"{prefix}meta": meta}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> CellReference:
        meta = arrays[f"{prefix}meta"]
        mean, m2, top = (np.asarray(arrays[f"{prefix}{k}"], np.float32) for k in ("mean", "m2", "max"))
        if not (mean.shape == m2.shape == top.shape) or meta.shape != (5,):
            raise ValueError(f"reference {prefix!r}: inconsistent array shapes")
        return cls(
            mean=mean.copy(),
            m2=m2.copy(),
            max=top.copy(),
            looks=int(meta[0]),
            absorbed=int(meta[1]),
            created_at=float(meta[2]),
            updated_at=float(meta[3]),
            ready_at=None if meta[4] < 0 else float(meta[4]),
        )


def boxes_to_cells(boxes: Sequence[Detection], grid: tuple[int, int]) -> np.ndarray:
    """Bool [H, W]: the cells any box (relative coordinates) overlaps."""
    h, w = grid
    cells = np.zeros((h, w), bool)
    for b in boxes:
        r1, r2 = int(np.floor(b.y1 * h)), int(np.ceil(b.y2 * h))
        c1, c2 = int(np.floor(b.x1 * w)), int(np.ceil(b.x2 * w))
        cells[max(0, r1) : min(h, max(r2, r1 + 1)), max(0, c1) : min(w, max(c2, c1 + 1))] = True
    return cells


def embedding_mask(boxes: Sequence[Detection], scales: Sequence[tuple[int, tuple[int, int]]]) -> np.ndarray:
    """Bool [E] over a flattened multi-scale embedding ((dim, (rows, cols)) per scale, in order): the
    elements of every cell any box overlaps, at every scale."""
    parts = [np.broadcast_to(boxes_to_cells(boxes, grid)[None], (dim, *grid)).ravel() for dim, grid in scales]
    return np.concatenate(parts)
