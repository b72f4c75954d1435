"""Smoke: a per-cell head on EfficientNet-Lite0's stride-32 map of the full 640x480 frame.

Why this shape: plumes are small (median box 1.7 % of the frame), so a whole-frame 224 px
classifier misses them; the 15x20 grid keeps one score per 32 px cell and the image score is the
max over cells, which also gives the region. Each cell's feature is also compared with the
frame's mean feature (scene normalisation), so haze and cloud that cover the whole view cancel out.
The last two blocks are fine-tuned from cached activations: that is minutes on 2 cores, and it
transferred far better to unseen cameras than a head on frozen features.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hazardwatch.models.backbone import EfficientNetLite0, load_pretrained, to_input
from hazardwatch.models.data import Sample, read_bgr

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 640, 480
CELL = 32
GRID_H, GRID_W = HEIGHT // CELL, WIDTH // CELL
SPLIT_BLOCK = 14  # blocks 14-15 and the 1280-channel head are fine-tuned


class SmokeHead(nn.Module):
    """Trainable top: backbone blocks [SPLIT_BLOCK, 16), conv head, scene-normalised per-cell MLP."""

    def __init__(self, backbone: EfficientNetLite0, hidden: int = 128) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(copy.deepcopy(list(backbone._blocks[SPLIT_BLOCK:])))
        self.conv_head = copy.deepcopy(backbone._conv_head)
        self.bn = copy.deepcopy(backbone._bn1)
        self.mlp = nn.Sequential(nn.Conv2d(2560, hidden, 1), nn.ReLU(), nn.Dropout(0.2), nn.Conv2d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        f = F.relu6(self.bn(self.conv_head(x)))
        scene = f.mean(dim=(2, 3), keepdim=True)
        return self.mlp(torch.cat([f, f - scene], dim=1))  # [N, 1, Gh, Gw] logits


class SmokeNet(nn.Module):
    """Export graph: normalised RGB [N, 3, 480, 640] -> per-cell logits [N, 1, 15, 20]."""

    def __init__(self, backbone: EfficientNetLite0, head: SmokeHead) -> None:
        super().__init__()
        self.stem = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem.forward_until(x, SPLIT_BLOCK))


def cell_targets(
    box: tuple[float, float, float, float] | None,
    positive: bool,
    grid: tuple[int, int] = (GRID_H, GRID_W),
) -> np.ndarray:
    """Per-cell target on `grid` (default: this head's): 1 smoke, 0 clear, -1 ignored (box edge cells
    and their neighbours)."""
    grid_h, grid_w = grid
    cell = WIDTH // grid_w
    t = np.zeros((grid_h, grid_w), np.float32)
    if not positive:
        return t
    if box is None:
        return np.full((grid_h, grid_w), -1.0, np.float32)
    x1, y1, x2, y2 = box[0] * WIDTH, box[1] * HEIGHT, box[2] * WIDTH, box[3] * HEIGHT
    box_area = max(1.0, (x2 - x1) * (y2 - y1))
    touched = np.zeros_like(t, bool)
    for i in range(grid_h):
        for j in range(grid_w):
            ix = max(0.0, min(x2, (j + 1) * cell) - max(x1, j * cell))
            iy = max(0.0, min(y2, (i + 1) * cell) - max(y1, i * cell))
            inter = ix * iy
            if inter > 0:
                touched[i, j] = True
            if inter >= min(0.3 * cell * cell, 0.5 * box_area):
                t[i, j] = 1.0
    if not (t > 0).any():  # tiny box: its centre cell
        ci = min(grid_h - 1, int((y1 + y2) / 2 // cell))
        cj = min(grid_w - 1, int((x1 + x2) / 2 // cell))
        t[ci, cj] = 1.0
    near = cv2.dilate((t > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) | touched
    t[near & (t == 0)] = -1.0
    return t


def _augment(
    img: np.ndarray, box: tuple[float, float, float, float] | None, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """Greyscale (night/IR look), mirror, and a brightness/contrast change; boxes follow."""
    if rng.random() < 0.5:
        img = img[:, ::-1].copy()
        if box is not None:
            box = (1 - box[2], box[1], 1 - box[0], box[3])
    if rng.random() < 0.4:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    alpha, beta = rng.uniform(0.75, 1.25), rng.uniform(-20, 20)
    img = np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    return img, box


def _prep(img: np.ndarray) -> np.ndarray:
    """The edge's own preprocessing (resize with INTER_AREA, BGR -> RGB)."""
    img = cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass
class Cached:
    acts: np.ndarray  # [N, 192, 15, 20] float16
    targets: np.ndarray  # [N, 15, 20]
    positive: np.ndarray  # [N] bool
    index: np.ndarray  # [N] sample index


def cache_activations(
    samples: Sequence[Sample],
    backbone: EfficientNetLite0,
    cache_dir: Path,
    augment_copies: Sequence[int] = (),
    seed: int = 0,
    batch: int = 8,
) -> Cached:
    """Run the frozen trunk once per image (plus augmented copies) and keep the block-14 input."""
    from tqdm import tqdm

    jobs: list[tuple[int, int]] = [(k, 0) for k in range(len(samples))]
    for k, n in enumerate(augment_copies):
        jobs += [(k, c + 1) for c in range(n)]
    listing = repr([(str(samples[k].path.resolve()), c) for k, c in jobs]) + f"{seed}"
    key = hashlib.sha256(listing.encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"smoke-acts-{key}.npz"
    if path.is_file():
        z = np.load(path)
        return Cached(z["acts"], z["targets"], z["positive"], z["index"])
    rng = np.random.default_rng(seed)
    acts, targets = [], []
    for start in tqdm(range(0, len(jobs), batch), desc="caching activations", unit="batch"):
        imgs = []
        for k, copy_no in jobs[start : start + batch]:
            s = samples[k]
            img = read_bgr(s.path)
            box = s.box
            if copy_no:
                img, box = _augment(img, box, rng)
            imgs.append(_prep(img))
            targets.append(cell_targets(box, s.positive))
        with torch.no_grad():
            a = backbone.forward_until(to_input(torch.from_numpy(np.stack(imgs))), SPLIT_BLOCK)
        acts.append(a.numpy().astype(np.float16))
    out = Cached(
        np.concatenate(acts),
        np.stack(targets),
        np.array([samples[k].positive for k, _ in jobs]),
        np.array([k for k, _ in jobs]),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, acts=out.acts, targets=out.targets, positive=out.positive, index=out.index)
    return out


def smoke_loss(logits: torch.Tensor, targets: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Cell BCE on labelled cells plus an image BCE on the max cell (what the edge thresholds)."""
    logits = logits[:, 0]
    mask = targets >= 0
    cell = F.binary_cross_entropy_with_logits(
        logits[mask], targets[mask], pos_weight=torch.tensor(4.0), reduction="mean"
    )
    # The image logit: max over smoke cells for positives, over every cell for negatives.
    neg_inf = torch.full_like(logits, -1e4)
    pos_cells = torch.where(targets > 0, logits, neg_inf).flatten(1).max(1).values
    any_cells = torch.where(targets >= 0, logits, neg_inf).flatten(1).max(1).values
    unboxed = torch.where(mask.flatten(1).any(1), any_cells, logits.flatten(1).max(1).values)
    has_pos = (targets > 0).flatten(1).any(1)
    img_logit = torch.where(has_pos, pos_cells, unboxed)
    img = F.binary_cross_entropy_with_logits(img_logit, positive.float())
    return cell + img


def train_head(
    cached: Cached, backbone: EfficientNetLite0, epochs: int = 6, seed: int = 0, batch: int = 32
) -> SmokeHead:
    """Fine-tune the top blocks and the head on cached activations; BN statistics stay frozen."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = SmokeHead(backbone)
    params = [
        {"params": [p for n, p in head.named_parameters() if not n.startswith("mlp")], "lr": 2e-4},
        {"params": head.mlp.parameters(), "lr": 1e-3},
    ]
    opt = torch.optim.AdamW(params, weight_decay=1e-4)
    pos_idx = np.where(cached.positive)[0]
    neg_idx = np.where(~cached.positive)[0]
    steps_per_epoch = int(np.ceil(2 * len(pos_idx) / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[2e-4, 1e-3], total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    for epoch in range(epochs):
        head.train()
        for m in head.modules():  # small batches: keep ImageNet BN statistics
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        # Every positive once per epoch, as many negatives drawn fresh (all of them when there are fewer).
        negatives = rng.choice(neg_idx, min(len(pos_idx), len(neg_idx)), replace=False)
        order = np.concatenate([pos_idx, negatives])
        rng.shuffle(order)
        total = 0.0
        bar = tqdm(range(0, len(order), batch), desc=f"epoch {epoch + 1}/{epochs}", unit="batch")
        for start in bar:
            idx = np.sort(order[start : start + batch])
            x = torch.from_numpy(cached.acts[idx].astype(np.float32))
            t = torch.from_numpy(cached.targets[idx])
            if rng.random() < 0.5:  # mirror the cached activation maps: a cheap second view of each frame
                x, t = x.flip(3), t.flip(2)
            loss = smoke_loss(head(x), t, torch.from_numpy(cached.positive[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            bar.set_postfix(loss=f"{total / (start + len(idx)):.4f}")
    return head.eval()


def build(head_state: dict[str, Any] | None = None) -> SmokeNet:
    """The export graph, optionally with a trained head's weights."""
    backbone = load_pretrained()
    head = SmokeHead(backbone)
    if head_state is not None:
        head.load_state_dict(head_state)
    return SmokeNet(backbone, head).eval()


def train(samples_train: Sequence[Sample], cache_dir: Path, epochs: int = 3, seed: int = 0) -> SmokeNet:
    """Cache (two augmented copies of every positive, one of a third of negatives) and fine-tune."""
    torch.set_num_threads(2)
    backbone = load_pretrained()
    rng = np.random.default_rng(seed)
    copies = [2 if s.positive else int(rng.random() < 0.33) for s in samples_train]
    cached = cache_activations(samples_train, backbone, cache_dir, copies, seed)
    log.info("cached %d activations (%d positive)", len(cached.positive), int(cached.positive.sum()))
    head = train_head(cached, backbone, epochs=epochs, seed=seed)
    return SmokeNet(backbone, head).eval()
