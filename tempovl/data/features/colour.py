"""`colour`: a colour-tracking descriptor of each window -- who (which colour) is where and how it moves.
No learned weights; deterministic. It keeps what one global average of a 2D backbone loses: a small
shape moving in a corner changes a few pixels of its own colour, and that change is what this measures.

For a window of F frames (F >= 2):

1. Each frame is area-resized to `res x res` (default 64) and every pixel quantised to a fixed palette of
   27 colours (3 levels per RGB channel: < 64, < 192, else).
2. Per frame and palette colour c, the raw image moments of the pixels of colour c, in coordinates
   scaled to [0, 1]: m00 (area share), m10, m01, m20, m02, m11 (y up). Static background of colour c
   adds the same amount to every frame, so the *changes* of these moments between frames are those of
   the moving pixels alone: translation changes m10 / m01, growing changes m00, rotation changes
   m20 / m02 / m11, a change of colour moves area from one colour to another.
3. Per colour, over the window: the mean m00, m10, m01 (where it is), the mean signed and mean absolute
   change per frame step of the six moments, the difference of the m01 change between the first and
   the second half (up-then-down), and the share of pixels that turn into or out of that colour per step.
   -> 27 x 17 values.
4. The dominant mover: each colour's activity (its summed absolute moment changes plus its turn share,
   over its area + 0.05, so that the background a mover uncovers does not win) relative to the most
   active colour's (27 values), and the 17 values of the most active colour
   (what the thing that moved most did, wherever its colour sits in the palette).
5. Layout: the middle frame's palette histogram on a G x G grid (default 4 x 4) -> 27 G^2 values.

Every value goes through sign(x) sqrt(|x|) (power normalisation, as for histograms), then x 4, so the
small per-step changes are not drowned by the areas. dim = 27 * 18 + 17 + 27 * G^2 (= 935 by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tempovl.data.features.extractors import FrameExtractor, check_clips, register_extractor
from tempovl.errors import ConfigError

NUM_COLOURS = 27
_PER_COLOUR = 17
_SCALE = 4.0


def palette_index(frames: torch.Tensor) -> torch.Tensor:
    """frames (B, 3, H, W) float in [0, 255] -> palette index (B, H, W) in [0, 27)."""
    levels = (frames >= 64).long() + (frames >= 192).long()  # (B, 3, H, W) in {0, 1, 2}
    return levels[:, 0] * 9 + levels[:, 1] * 3 + levels[:, 2]


def colour_moments(index: torch.Tensor) -> torch.Tensor:
    """palette index (B, H, W) -> raw moments (B, 27, 6): m00, m10, m01, m20, m02, m11 over the image,
    each a mean over all pixels (x right, y up, both in [0, 1])."""
    b, h, w = index.shape
    ys = 1.0 - (torch.arange(h, dtype=torch.float32) + 0.5) / h  # up
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    y, x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W)
    coords = torch.stack([torch.ones_like(x), x, y, x * x, y * y, x * y], dim=-1).reshape(h * w, 6)
    flat = (index.reshape(b, h * w) + torch.arange(b).view(b, 1) * NUM_COLOURS).reshape(-1)  # (B*H*W,)
    out = torch.zeros(b * NUM_COLOURS, 6)
    out.index_add_(0, flat, coords.repeat(b, 1))
    return out.reshape(b, NUM_COLOURS, 6) / (h * w)


def _power(x: torch.Tensor) -> torch.Tensor:
    return _SCALE * x.sign() * x.abs().sqrt()


class ColourExtractor(FrameExtractor):
    """Palette-colour moments and their changes over the window (see the module docstring)."""

    def __init__(self, frames_per_window: int = 6, size: int = 224, res: int = 64, grid: int = 4):
        super().__init__()
        if frames_per_window < 2:
            raise ConfigError(f"colour needs at least 2 frames per window (got {frames_per_window})")
        self.name, self.frames_per_window, self.size = "colour", frames_per_window, size
        self.res, self.grid = res, grid
        self.dim = NUM_COLOURS * (_PER_COLOUR + 1) + _PER_COLOUR + NUM_COLOURS * grid * grid

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, self.size, self.name)
        n, f = clips.shape[:2]
        x = clips.reshape(n * f, *clips.shape[2:]).permute(0, 3, 1, 2).float()  # (N*F, 3, H, W)
        if x.shape[-1] != self.res:
            x = F.interpolate(x, size=(self.res, self.res), mode="area")
        index = palette_index(x)  # (N*F, res, res)
        mom = colour_moments(index).reshape(n, f, NUM_COLOURS, 6)  # (N, F, 27, 6)
        step = mom[:, 1:] - mom[:, :-1]  # (N, F-1, 27, 6)
        half = (f - 1) // 2 or 1
        up_down = step[:, :half, :, 2].mean(1) - step[:, half:, :, 2].mean(1) if f > 2 else step[:, 0, :, 2]
        idx = index.reshape(n, f, -1)  # (N, F, res*res)
        changed = idx[:, 1:] != idx[:, :-1]  # (N, F-1, P)
        turn = torch.zeros(n, NUM_COLOURS)
        for src in (idx[:, 1:], idx[:, :-1]):  # pixels turning into, and out of, each colour
            turn.scatter_add_(1, src.reshape(n, -1), changed.reshape(n, -1).float())
        turn = turn / ((f - 1) * idx.shape[-1])
        per_colour = torch.cat(
            [
                mom[..., :3].mean(1),  # (N, 27, 3)
                step.mean(1),  # (N, 27, 6)
                step.abs().mean(1),  # (N, 27, 6)
                up_down[..., None],  # (N, 27, 1)
                turn[..., None],  # (N, 27, 1)
            ],
            dim=-1,
        )  # (N, 27, 17)
        # relative to its area: a background uncovered by a mover changes as much as the mover does
        activity = (step.abs().mean(1).sum(-1) + turn) / (mom[..., 0].mean(1) + 0.05)  # (N, 27)
        share = activity / activity.amax(1, keepdim=True).clamp_min(1e-9)  # (N, 27)
        dominant = per_colour[torch.arange(n), activity.argmax(1)]  # (N, 17)
        middle = F.one_hot(index.reshape(n, f, self.res, self.res)[:, f // 2], NUM_COLOURS)  # (N, r, r, 27)
        layout = F.adaptive_avg_pool2d(middle.permute(0, 3, 1, 2).float(), self.grid)  # (N, 27, G, G)
        parts = [per_colour.reshape(n, -1), share, dominant, layout.reshape(n, -1)]
        return _power(torch.cat(parts, dim=1))  # (N, dim)


@register_extractor("colour")
def _build(path: str | None) -> FrameExtractor:
    return ColourExtractor(frames_per_window=int(path) if path else 6)
