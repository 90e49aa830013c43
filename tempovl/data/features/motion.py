"""`motion`: a hand-designed spatio-temporal descriptor of each window, the 3D half of HERO-style
features when no learned 3D backbone (SlowFast) is at hand. No learned weights; deterministic.

What it computes, for a window of F frames (F >= 2):

1. Each frame -> grey level in [0, 1] (ITU-R BT.601 luma), area-resized to `res x res` (default 32).
2. For each consecutive pair (g_t, g_t+1):
   - temporal difference d = g_t+1 - g_t;
   - dense displacement by block matching: for every pixel p and every integer shift u in
     [-R, R]^2 (default R = 4), cost_u(p) = mean over a 5x5 window of |g_t+1(p + u) - g_t(p)|
     (replicate padding) plus a tiny 1e-4 * |u| tie-breaker, so flat or static regions get u = 0;
     flow(p) = argmin_u cost_u(p), in pixels of the res x res frame per sampled-frame step;
   - motion evidence w(p) = mean over a 5x5 window of |d|.
3. On a G x G grid of cells (default 4 x 4), averaged over pixels and pairs:
   - direction histogram (8 bins of 45 deg, bin 0 centred on "right", counter-clockwise, image up
     = 90 deg), each pixel voting w(p) * |flow(p)| into the bin of its flow angle;
   - temporal-difference magnitude histogram: fraction of pixels with |d| in [0.02, 0.05),
     [0.05, 0.1), [0.1, 0.2), [0.2, 1];
   - w-weighted mean flow (dx, dy) with dy positive = up.
4. Global: mean |d|, std over pairs of the per-pair mean |d|, w-weighted mean flow magnitude and
   mean (dx, dy), fraction of pixels with |d| >= 0.05, and the 8-bin whole-frame direction histogram.

dim = G*G*(8 + 4 + 2) + 14 (= 238 by default). A static video gives exactly zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tempovl.data.features.extractors import FrameExtractor, check_clips, register_extractor
from tempovl.errors import ConfigError

_DIFF_EDGES = (0.02, 0.05, 0.1, 0.2)
_MOVING = 0.05
_NUM_DIRS = 8
_WINDOW = 5
_TIE_BREAK = 1e-4


def _grey(frames: torch.Tensor, res: int) -> torch.Tensor:
    """frames (B, H, W, 3) uint8 -> grey (B, 1, res, res) in [0, 1]."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    g = (x * luma).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    return F.interpolate(g, size=(res, res), mode="area") if g.shape[-1] != res else g


def _box(x: torch.Tensor) -> torch.Tensor:
    """Mean over a 5x5 window, replicate padding: (B, C, H, W) -> same shape."""
    pad = _WINDOW // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = F.avg_pool2d(x, (1, _WINDOW), stride=1)  # separable: rows then columns
    return F.avg_pool2d(x, (_WINDOW, 1), stride=1)


def block_matching_flow(g0: torch.Tensor, g1: torch.Tensor, radius: int) -> torch.Tensor:
    """Dense integer flow from g0 to g1 (B, 1, H, W) by 5x5 block matching: (B, 2, H, W) as (dx, dy)
    in image coordinates (x right, y down)."""
    b, _, h, w = g0.shape
    shifts = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    padded = F.pad(g1, (radius, radius, radius, radius), mode="replicate")  # (B, 1, H+2R, W+2R)
    # g1 shifted so that position p holds g1(p + u): (B, S, H, W)
    moved = torch.cat(
        [padded[:, :, radius + dy : radius + dy + h, radius + dx : radius + dx + w] for dx, dy in shifts],
        dim=1,
    )
    cost = _box((moved - g0).abs())  # (B, S, H, W)
    norms = torch.tensor([math.hypot(dx, dy) for dx, dy in shifts]).view(1, -1, 1, 1)
    best = (cost + _TIE_BREAK * norms).argmin(dim=1)  # (B, H, W)
    table = torch.tensor(shifts, dtype=torch.float32)  # (S, 2)
    return table[best].permute(0, 3, 1, 2)  # (B, H, W, 2) -> (B, 2, H, W)


def _cell_sum(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> per-cell means (B, C, grid, grid)."""
    return F.adaptive_avg_pool2d(x, grid)


class MotionExtractor(FrameExtractor):
    """Block-matching flow + temporal-difference histograms per grid cell (see the module docstring)."""

    def __init__(
        self, frames_per_window: int = 4, size: int = 224, res: int = 32, radius: int = 4, grid: int = 4
    ):
        super().__init__()
        if frames_per_window < 2:
            raise ConfigError(f"motion needs at least 2 frames per window (got {frames_per_window})")
        self.name, self.frames_per_window, self.size = "motion", frames_per_window, size
        self.res, self.radius, self.grid = res, radius, grid
        self.dim = grid * grid * (_NUM_DIRS + len(_DIFF_EDGES) + 2) + 6 + _NUM_DIRS

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, self.size, self.name)
        n, f = clips.shape[:2]
        g = _grey(clips.reshape(n * f, *clips.shape[2:]), self.res)  # (N*F, 1, res, res)
        g = g.reshape(n, f, 1, self.res, self.res)  # (N, F, 1, res, res)
        g0 = g[:, :-1].reshape(-1, 1, self.res, self.res)  # (N*(F-1), 1, res, res)
        g1 = g[:, 1:].reshape(-1, 1, self.res, self.res)
        diff = (g1 - g0).abs()  # (P, 1, res, res), P = N*(F-1) pairs
        flow = block_matching_flow(g0, g1, self.radius)  # (P, 2, res, res), (dx, dy) with y down
        flow = torch.cat([flow[:, :1], -flow[:, 1:]], dim=1)  # y up
        weight = _box(diff)  # (P, 1, res, res)
        mag = flow.norm(dim=1, keepdim=True)  # (P, 1, res, res)
        angle = torch.atan2(flow[:, 1:], flow[:, :1]) % (2 * math.pi)
        bins = torch.round(angle / (2 * math.pi / _NUM_DIRS)).long() % _NUM_DIRS  # (P, 1, res, res)
        votes = F.one_hot(bins[:, 0], _NUM_DIRS).permute(0, 3, 1, 2).float() * (
            weight * mag
        )  # (P, 8, res, res)
        edges = list(_DIFF_EDGES) + [float("inf")]
        diff_hist = torch.cat(
            [((diff >= lo) & (diff < hi)).float() for lo, hi in zip(edges[:-1], edges[1:])], 1
        )
        mean_flow = flow * weight  # (P, 2, res, res)

        per_cell = torch.cat([votes, diff_hist, mean_flow], dim=1)  # (P, 14, res, res)
        cells = _cell_sum(per_cell, self.grid)  # (P, 14, G, G)
        cells = cells.reshape(n, f - 1, -1).mean(dim=1)  # (N, 14*G*G)

        energy = diff.mean(dim=(1, 2, 3)).reshape(n, f - 1)  # (N, F-1)
        w_sum = weight.sum(dim=(1, 2, 3)).reshape(n, f - 1).sum(1).clamp_min(1e-8)  # (N,)
        w_mag = (weight * mag).sum(dim=(1, 2, 3)).reshape(n, f - 1).sum(1) / w_sum
        w_flow = mean_flow.sum(dim=(2, 3)).reshape(n, f - 1, 2).sum(1) / w_sum[:, None]  # (N, 2)
        moving = (diff >= _MOVING).float().mean(dim=(1, 2, 3)).reshape(n, f - 1).mean(1)
        dirs = votes.mean(dim=(2, 3)).reshape(n, f - 1, _NUM_DIRS).mean(1)  # (N, 8)
        spread = energy.std(dim=1, unbiased=False)
        glob = torch.cat(
            [energy.mean(1, keepdim=True), spread[:, None], w_mag[:, None], w_flow, moving[:, None]], 1
        )
        return torch.cat([cells, glob, dirs], dim=1)  # (N, dim)


@register_extractor("motion")
def _build(path: str | None) -> FrameExtractor:
    return MotionExtractor(frames_per_window=int(path) if path else 4)
