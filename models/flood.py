"""Waterlogging: frozen EfficientNet-Lite0 features, a per-cell linear head, strong augmentation.

Why so small: about 100 usable frames from six cameras. A frozen backbone plus a linear head per
stride-32 cell cannot memorise much, augmentation (crops, flips, colour, blur, greyscale) stretches
the few frames, and the per-cell output lets the edge restrict it to a configured road zone. Image
labels train the head through a smooth max over cells (what the edge thresholds); the floodX water
masks give per-cell targets where they exist.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hazardwatch.models.backbone import EfficientNetLite0, load_pretrained, to_input
from hazardwatch.models.data import Sample, list_images, read_bgr

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 384, 256
GRID_H, GRID_W = HEIGHT // 32, WIDTH // 32


class FloodNet(nn.Module):
    """Normalised RGB [N, 3, 256, 384] -> per-cell water logits [N, 1, 8, 12]."""

    def __init__(self, backbone: EfficientNetLite0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(1280, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.features(x))


def flood_samples(data_dirs: Sequence[Path]) -> tuple[list[Sample], list[Sample]]:
    """(labelled, ambiguous). Folders named flood* are positive, no_flood* negative; not_usable skipped.

    `ambiguous` (NC12's Not_sure: thin films, distant ponding) is neither label: it is only scored
    and reported, never trained or counted.
    """
    labelled: list[Sample] = []
    ambiguous: list[Sample] = []
    for root in data_dirs:
        root = Path(root)
        for path in list_images([root]):
            top = path.relative_to(root).parts[0].lower()
            if top.startswith("no_flood"):
                labelled.append(Sample(path, False))
            elif top == "flood":
                labelled.append(Sample(path, True))
            elif top == "ambiguous":
                ambiguous.append(Sample(path, False))
    return labelled, ambiguous


def camera_of(path: Path) -> str:
    """Camera of a flood frame: floodX is one CCTV; NC12 names carry the camera; tiles do not."""
    if "floodx" in str(path).lower():
        return "floodx"
    m = re.search(r"(Canal|Buxton|Mirlo|Ocracoke|SouthDock)", path.name)
    if m:
        return m.group(1)
    return "tile:" + path.name.split("_")[2] if path.name.startswith("gridthumb") else "tile:" + path.stem


def water_mask_for(path: Path) -> np.ndarray | None:
    """floodX water mask (`masks_water/<stem>_mask.tiff`) as a float image, if the folder has one."""
    mask_path = path.parent.parent / "masks_water" / f"{path.stem}_mask.tiff"
    if not mask_path.is_file():
        return None
    m = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if m is None:
        return None
    return (m.max(axis=2) if m.ndim == 3 else m).astype(np.float32)


def cell_targets(sample: Sample, mask: np.ndarray | None) -> np.ndarray:
    """1 water, 0 dry, -1 unknown (a positive frame without a mask: the max-pool decides)."""
    if not sample.positive:
        return np.zeros((GRID_H, GRID_W), np.float32)
    if mask is None:
        return np.full((GRID_H, GRID_W), -1.0, np.float32)
    frac = cv2.resize(mask, (GRID_W, GRID_H), interpolation=cv2.INTER_AREA)
    return np.where(frac > 0.3, 1.0, np.where(frac < 0.02, 0.0, -1.0)).astype(np.float32)


def augment(img: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Random crop (70-100 %), mirror, colour/brightness, blur, greyscale: cameras differ in all of these."""
    h, w = img.shape[:2]
    s = rng.uniform(0.7, 1.0)
    ch, cw = int(h * s), int(w * s)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = img[y : y + ch, x : x + cw]
    if mask is not None:
        mask = mask[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        mask = mask[:, ::-1] if mask is not None else None
    img = img.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    img = img * rng.uniform(0.85, 1.15, size=3)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (5, 5), 0)
    if rng.random() < 0.2:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img), (np.ascontiguousarray(mask) if mask is not None else None)


def _prep(img: np.ndarray) -> np.ndarray:
    img = cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def cache_features(
    samples: Sequence[Sample], backbone: EfficientNetLite0, copies: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frozen features of each frame and `copies` augmented versions: (feats, cell targets, labels)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    feats, targets, labels = [], [], []
    for s in tqdm(samples, desc="flood features", unit="img"):
        img = read_bgr(s.path)
        mask = water_mask_for(s.path) if s.positive else None
        if mask is not None and mask.shape[:2] != img.shape[:2]:
            mask = cv2.resize(mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        views = [(img, mask)] + [augment(img, mask, rng) for _ in range(copies)]
        batch = np.stack([_prep(v) for v, _ in views])
        with torch.no_grad():
            f = backbone.features(to_input(torch.from_numpy(batch)))
        feats.append(f.numpy())
        targets += [cell_targets(s, m) for _, m in views]
        labels += [s.positive] * len(views)
    return np.concatenate(feats), np.stack(targets), np.array(labels)


def train_head(
    feats: np.ndarray, targets: np.ndarray, labels: np.ndarray, epochs: int = 300, seed: int = 0
) -> nn.Conv2d:
    """Full-batch training of the 1x1 conv: image BCE on a smooth max over cells + masked cell BCE."""
    torch.manual_seed(seed)
    head = nn.Conv2d(1280, 1, 1)
    x = torch.from_numpy(feats)
    t = torch.from_numpy(targets)
    y = torch.from_numpy(labels.astype(np.float32))
    opt = torch.optim.Adam(head.parameters(), lr=3e-3, weight_decay=1e-3)
    pos_w = torch.tensor(float((~labels).sum()) / max(1.0, float(labels.sum())))
    for _ in range(epochs):
        logits = head(x)[:, 0]
        # Smooth max normalised by the cell count: near the mean for diffuse evidence, near the max for a
        # strong patch. A plain max made every wet-looking cell of a negative frame count (tried: worse).
        img_logit = (torch.logsumexp(logits.flatten(1) * 4.0, dim=1) - np.log(GRID_H * GRID_W)) / 4.0
        loss = F.binary_cross_entropy_with_logits(img_logit, y, pos_weight=pos_w)
        known = t >= 0
        if known.any():
            loss = loss + 0.5 * F.binary_cross_entropy_with_logits(logits[known], t[known])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()


def train(samples_train: Sequence[Sample], copies: int = 8, seed: int = 0) -> FloodNet:
    torch.set_num_threads(2)
    backbone = load_pretrained()
    feats, targets, labels = cache_features(samples_train, backbone, copies, seed)
    log.info("flood features %s, %d positive", feats.shape, int(labels.sum()))
    net = FloodNet(backbone)
    net.head = train_head(feats, targets, labels, seed=seed)
    return net.eval()
