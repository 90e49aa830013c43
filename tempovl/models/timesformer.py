"""TimeSformer video encoder (HiTeA's Table 14 backbone) and the video-encoder factory.

Divided space-time attention (Bertasius et al., ICML 2021): frames are cut into 16x16 patches; every
pre-LN block first attends over time (each patch position with itself across the T frames, output through
``temporal_fc``), then over space (the patches of one frame plus a per-frame copy of the cls token, whose
T results are averaged), then an MLP. Spatial and temporal position embeddings are learned and resized
(bicubic over the patch grid, linear over time) when the input differs from the configured size.
Output tokens are [v_cls, v_1..v_M] with M = T·(H/16)·(W/16), in (t, h, w) order.

Module names follow facebookresearch/TimeSformer (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``time_embed``, ``blocks.{i}.{norm1, attn, temporal_norm1, temporal_attn, temporal_fc, norm2, mlp}``,
``norm``) except that attention uses the shared ``Attention`` with separate q/k/v projections;
:func:`split_fused_qkv` turns a checkpoint's fused ``*.qkv`` weights into those.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from tempovl.config import from_dict
from tempovl.errors import ConfigError
from tempovl.layers.attention import Attention
from tempovl.layers.transformer import MLP
from tempovl.models.mvit import MViT, MViTConfig, drop_path

LN_EPS = 1e-6


@dataclass
class TimeSformerConfig:
    """TimeSformer sizes. Defaults are ViT-B/16 with divided space-time attention over 8 frames."""

    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 8
    dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path: float = 0.1
    dropout: float = 0.0
    grad_checkpoint: bool = False
    attn_impl: str = "auto"

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ConfigError(f"timesformer.dim: {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.image_size < self.patch_size:
            raise ConfigError(
                f"timesformer.image_size: {self.image_size} is smaller than patch_size {self.patch_size}"
            )


def timesformer_tiny_config(**overrides) -> TimeSformerConfig:
    """A 2-layer, 32-wide TimeSformer for tests and CPU demos."""
    kw = dict(image_size=32, patch_size=8, num_frames=4, dim=32, depth=2, num_heads=2, drop_path=0.0)
    kw.update(overrides)
    return TimeSformerConfig(**kw)


class DividedBlock(nn.Module):
    """Temporal attention, then spatial attention with a per-frame cls copy, then MLP (all pre-LN)."""

    def __init__(self, cfg: TimeSformerConfig, drop_path: float = 0.0):
        super().__init__()
        d, heads = cfg.dim, cfg.num_heads
        self.drop_path = drop_path
        self.temporal_norm1 = nn.LayerNorm(d, eps=LN_EPS)
        self.temporal_attn = Attention(d, heads, dropout=cfg.dropout, impl=cfg.attn_impl)
        self.temporal_fc = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = Attention(d, heads, dropout=cfg.dropout, impl=cfg.attn_impl)
        self.norm2 = nn.LayerNorm(d, eps=LN_EPS)
        self.mlp = MLP(d, int(d * cfg.mlp_ratio), dropout=cfg.dropout)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_path, self.training)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x (B, 1 + T·N, D), patch tokens in (t, n) order -> same shape."""
        b, _, d = x.shape
        t = num_frames
        cls_tok, tokens = x[:, :1], x[:, 1:]
        n = tokens.shape[1] // t
        # temporal: every patch position attends over its T frames
        xt = tokens.reshape(b, t, n, d).transpose(1, 2).reshape(b * n, t, d)  # (B, T, N, D) -> (B·N, T, D)
        res_t = self.temporal_attn(self.temporal_norm1(xt))
        res_t = res_t.reshape(b, n, t, d).transpose(1, 2).reshape(b, t * n, d)  # (B·N, T, D) -> (B, T·N, D)
        tokens = tokens + self.temporal_fc(self._drop(res_t))
        # spatial: every frame attends over its N patches and its own copy of the cls token
        xs = tokens.reshape(b * t, n, d)  # (B, T·N, D) -> (B·T, N, D)
        cls_rep = cls_tok.expand(b, t, d).reshape(b * t, 1, d)  # (B, 1, D) -> (B·T, 1, D)
        res_s = self._drop(self.attn(self.norm1(torch.cat([cls_rep, xs], dim=1))))  # (B·T, 1 + N, D)
        res_cls = res_s[:, 0].reshape(b, t, d).mean(dim=1, keepdim=True)  # (B·T, D) -> (B, 1, D)
        res_tokens = res_s[:, 1:].reshape(b, t * n, d)  # (B·T, N, D) -> (B, T·N, D)
        x = torch.cat([cls_tok + res_cls, tokens + res_tokens], dim=1)
        return x + self._drop(self.mlp(self.norm2(x)))


class TimeSformer(nn.Module):
    """Divided space-time ViT: video (B, T, 3, H, W) -> (B, 1 + T·h·w, dim) = [v_cls, v_1..v_M]."""

    def __init__(self, cfg: TimeSformerConfig):
        super().__init__()
        self.cfg = cfg
        d, grid = cfg.dim, cfg.image_size // cfg.patch_size
        self.grid = grid
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, d))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, d))
        self.blocks = nn.ModuleList(
            DividedBlock(cfg, cfg.drop_path * i / max(cfg.depth - 1, 1)) for i in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.out_dim = d
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for block in list(self.blocks)[1:]:  # later temporal branches start as identity (as in TimeSformer)
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)

    _init_weights = staticmethod(MViT._init_weights)  # the same ViT initialisation

    def _spatial_pos(self, h: int, w: int) -> torch.Tensor:
        """Patch position embeddings (1, h·w, D), bicubically resized from the configured grid."""
        pos = self.pos_embed[:, 1:]
        if (h, w) == (self.grid, self.grid):
            return pos
        d = pos.shape[-1]
        pos = pos.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (1, g·g, D) -> (1, D, g, g)
        pos = F.interpolate(pos, size=(h, w), mode="bicubic", align_corners=False)
        return pos.flatten(2).transpose(1, 2)  # (1, D, h, w) -> (1, h·w, D)

    def _time_pos(self, t: int) -> torch.Tensor:
        """Frame position embeddings (1, t, D), linearly resized from the configured frame count."""
        if t == self.time_embed.shape[1]:
            return self.time_embed
        resized = F.interpolate(self.time_embed.transpose(1, 2), size=t, mode="linear")  # (1, D, t)
        return resized.transpose(1, 2)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, 3, H, W), normalised -> (B, 1 + T·(H/p)·(W/p), dim)."""
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"TimeSformer expects video (B, T, 3, H, W), got {tuple(video.shape)}")
        b, t = video.shape[:2]
        patches = self.patch_embed.proj(video.flatten(0, 1))  # (B·T, 3, H, W) -> (B·T, D, h, w)
        h, w = patches.shape[-2:]
        d = patches.shape[1]
        patches = patches.flatten(2).transpose(1, 2) + self._spatial_pos(h, w)  # (B·T, h·w, D)
        patches = patches.reshape(b, t, h * w, d) + self._time_pos(t)[:, :, None]  # (B, T, h·w, D)
        cls_tok = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        x = torch.cat([cls_tok, patches.reshape(b, t * h * w, d)], dim=1)  # (B, 1 + T·h·w, D)
        for block in self.blocks:
            if self.cfg.grad_checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, t, use_reentrant=False)
            else:
                x = block(x, t)
        return self.norm(x)


def split_fused_qkv(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rewrite fused ``*.qkv.{weight,bias}`` (3·D rows, q then k then v) as ``*.q``, ``*.k``, ``*.v``."""
    out = {}
    for key, value in state_dict.items():
        stem, _, leaf = key.rpartition(".")
        if stem.endswith(".qkv"):
            base = stem[: -len(".qkv")]
            for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                out[f"{base}.{name}.{leaf}"] = part.clone()
        else:
            out[key] = value
    return out


VIDEO_ENCODERS = {"mvit": (MViTConfig, MViT), "timesformer": (TimeSformerConfig, TimeSformer)}


def build_video_encoder(kind: str, cfg: dict) -> nn.Module:
    """Build the video encoder `kind` ("mvit" or "timesformer") from a config mapping (strict keys)."""
    if kind not in VIDEO_ENCODERS:
        raise ConfigError(f"unknown video encoder {kind!r}; known: {', '.join(VIDEO_ENCODERS)}")
    config_cls, model_cls = VIDEO_ENCODERS[kind]
    return model_cls(from_dict(config_cls, cfg, kind))
