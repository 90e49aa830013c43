"""`clip:/path`: any Hugging Face CLIP vision tower from a local directory (never the hub).

The directory may hold a full `CLIPModel` or a `CLIPVisionModel[WithProjection]`. If it has a visual
projection the feature is `image_embeds` (projection_dim), otherwise the pooled output (hidden_size).
Middle frame of each window, resized to the model's image size, CLIP's normalisation (or the
directory's `preprocessor_config.json` mean/std when present).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tempovl.data.features.extractors import (
    FrameExtractor,
    check_clips,
    middle_frame,
    register_extractor,
    to_float_images,
)
from tempovl.errors import InputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_PROJECTED = ("CLIPModel", "CLIPVisionModelWithProjection")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable JSON ({e})") from None


class CLIPExtractor(FrameExtractor):
    """CLIP image embedding of each window's middle frame."""

    def __init__(self, model_dir: str | Path):
        super().__init__()
        import transformers

        model_dir = Path(model_dir)
        config_file = model_dir / "config.json"
        if not config_file.is_file():
            raise InputError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
        config = _read_json(config_file)
        projected = any(a in _PROJECTED for a in config.get("architectures") or [])
        cls = transformers.CLIPVisionModelWithProjection if projected else transformers.CLIPVisionModel
        try:
            self.model = cls.from_pretrained(str(model_dir), local_files_only=True).eval()
        except (OSError, ValueError) as e:
            raise InputError(f"{model_dir}: cannot load a CLIP vision model ({e})") from None
        vision = self.model.config
        self.projected = projected
        self.name = "clip"
        self.dim = vision.projection_dim if projected else vision.hidden_size
        self.frames_per_window, self.size = 1, vision.image_size
        mean, std = CLIP_MEAN, CLIP_STD
        pre = model_dir / "preprocessor_config.json"
        if pre.is_file():
            pre_cfg = _read_json(pre)
            mean = tuple(pre_cfg.get("image_mean", mean))
            std = tuple(pre_cfg.get("image_std", std))
        self.mean, self.std = mean, std

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, self.size, self.name)
        pixels = to_float_images(middle_frame(clips), self.mean, self.std)  # (N, 3, H, W)
        out = self.model(pixel_values=pixels)
        feats = out.image_embeds if self.projected else out.pooler_output  # (N, dim)
        return feats.float()


@register_extractor("clip")
def _build(path: str | None) -> FrameExtractor:
    if not path:
        raise InputError("clip extractor needs a local model directory: `clip:/path/to/clip`")
    return CLIPExtractor(path)
