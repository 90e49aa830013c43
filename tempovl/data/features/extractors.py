"""The frame-feature extractor interface, its registry, per-frame concatenation, and the offline
`random2d` fallback.

An extractor maps a batch of windows (one window = the frames sampled for one feature-frame, see
`tempovl.data.video.read_windows`) to one vector per window. Like HERO's 2D ResNet + 3D SlowFast
features, several extractors are concatenated per window with `+`: `build_extractor("mobilenet_v2+motion")`.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tempovl.errors import ConfigError, InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> factory(path or None) ; filled by the modules in _BUILTIN_MODULES on first use
EXTRACTORS: dict[str, Callable[[str | None], FrameExtractor]] = {}
_BUILTIN_MODULES = (
    "tempovl.data.features.mobilenet",
    "tempovl.data.features.motion",
    "tempovl.data.features.clip",
    "tempovl.data.features.colour",
)


class FrameExtractor(torch.nn.Module, abc.ABC):
    """Maps clips (N, F, H, W, 3) uint8 to features (N, dim) float32.

    `frames_per_window` is how many frames per window it wants (F), `size` the square frame side it
    expects (H = W = size).
    """

    name: str = ""
    dim: int = 0
    frames_per_window: int = 1
    size: int = 224

    @abc.abstractmethod
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (N, F, size, size, 3) uint8 -> (N, dim) float32."""


def register_extractor(name: str) -> Callable:
    """Decorator: register `factory(path: str | None) -> FrameExtractor` under `name`."""

    def deco(factory: Callable) -> Callable:
        EXTRACTORS[name] = factory
        return factory

    return deco


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def available_extractors() -> list[str]:
    _load_builtins()
    return sorted(EXTRACTORS)


def to_float_images(frames: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """frames (B, H, W, 3) uint8 -> (B, 3, H, W) float32, scaled to [0, 1] and normalised."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0  # (B, H, W, 3) -> (B, 3, H, W)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def middle_frame(clips: torch.Tensor) -> torch.Tensor:
    """clips (N, F, H, W, 3) -> the middle frame of each window (N, H, W, 3)."""
    return clips[:, clips.shape[1] // 2]


def check_clips(clips: torch.Tensor, size: int, name: str) -> None:
    if clips.ndim != 5 or clips.shape[-1] != 3 or clips.dtype != torch.uint8:
        raise InputError(
            f"{name}: expected clips (N, F, H, W, 3) uint8, got {tuple(clips.shape)} {clips.dtype}"
        )
    if clips.shape[2] != size or clips.shape[3] != size:
        raise InputError(f"{name}: expected {size}x{size} frames, got {clips.shape[2]}x{clips.shape[3]}")


def subsample_frames(clips: torch.Tensor, num: int) -> torch.Tensor:
    """Pick `num` evenly spread frames of each window: (N, F, H, W, 3) -> (N, num, H, W, 3)."""
    f = clips.shape[1]
    if num == f:
        return clips
    idx = [min(f - 1, int((j + 0.5) * f / num)) for j in range(num)]
    return clips[:, idx]


def resize_clips(clips: torch.Tensor, size: int) -> torch.Tensor:
    """Resize square frames (N, F, S, S, 3) uint8 to (N, F, size, size, 3)."""
    if clips.shape[2] == size and clips.shape[3] == size:
        return clips
    n, f, h, w, _ = clips.shape
    x = clips.reshape(n * f, h, w, 3).permute(0, 3, 1, 2).float()  # (N*F, 3, H, W)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # (N*F, size, size, 3)
    return x.reshape(n, f, size, size, 3)


class ConcatExtractor(FrameExtractor):
    """Per-window concatenation of several extractors (HERO's 2D + 3D features).

    It asks for the largest `frames_per_window` and `size` of its parts and gives each part the
    frames it wants (evenly spread subset, resized if needed).
    """

    def __init__(self, parts: list[FrameExtractor]):
        super().__init__()
        self.parts = torch.nn.ModuleList(parts)
        self.name = "+".join(p.name for p in parts)
        self.dim = sum(p.dim for p in parts)
        self.frames_per_window = max(p.frames_per_window for p in parts)
        self.size = max(p.size for p in parts)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, self.size, self.name)
        outs = []
        for part in self.parts:
            sub = resize_clips(subsample_frames(clips, part.frames_per_window), part.size)
            outs.append(part(sub).float())
        return torch.cat(outs, dim=-1)  # (N, sum of dims)


class Random2D(FrameExtractor):
    """Offline FALLBACK 2D extractor: a small conv net whose weights are drawn from a fixed seed.

    It needs no download or weight file, so the pipeline always runs; its features carry colour and
    coarse layout but no learned semantics. Middle frame of each window, ImageNet normalisation,
    3 stride-2 conv layers (3->32->64->128, ReLU), global average + max pooling -> 256 dims.
    """

    def __init__(self, seed: int = 0, size: int = 224):
        super().__init__()
        self.name, self.dim, self.frames_per_window, self.size = "random2d", 256, 1, size
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
            for c_in, c_out in ((3, 32), (32, 64), (64, 128))
        )
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.in_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                conv.bias.zero_()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, self.size, self.name)
        x = to_float_images(middle_frame(clips), IMAGENET_MEAN, IMAGENET_STD)  # (N, 3, H, W)
        for conv in self.convs:
            x = F.relu(conv(x))
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (N, 256)


@register_extractor("random2d")
def _build_random2d(path: str | None) -> FrameExtractor:
    return Random2D(seed=int(path) if path else 0)


def build_extractor(spec: str, **paths: str | None) -> FrameExtractor:
    """Build an extractor from a spec such as "mobilenet_v2+motion", "clip:/models/clip" or
    "random2d+motion". Each `+`-part is `name` or `name:path`; `paths[name]` gives a part's path
    (weights file or model directory) when the spec does not. Unknown names raise ConfigError.
    """
    _load_builtins()
    parts: list[FrameExtractor] = []
    for item in spec.split("+"):
        item = item.strip()
        name, _, path = item.partition(":")
        if name not in EXTRACTORS:
            raise ConfigError(
                f"unknown extractor {name!r} in {spec!r}; known: {', '.join(sorted(EXTRACTORS))}"
            )
        parts.append(EXTRACTORS[name](path or paths.get(name)))
    if not parts:
        raise ConfigError(f"empty extractor spec {spec!r}")
    extractor = parts[0] if len(parts) == 1 else ConcatExtractor(parts)
    return extractor.eval()
