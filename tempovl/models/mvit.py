"""MViTv2 video encoder (HiTeA's default backbone): raw frames -> [v_cls, v_1..v_M].

Multiscale ViT (Li et al., CVPR 2022) as used by the public HiTeA release: a conv patch embedding
(kernel [3,7,7], stride [2,4,4]), a cls token, no absolute positions, and 24 pre-LN blocks in four
stages [2, 3, 16, 3]. Every block pools Q, K and V with depthwise 3-D convolutions; the first block of
a stage pools Q with spatial stride 2 (so the token grid shrinks 56 -> 28 -> 14 -> 7 at 224²) and
doubles width and heads (96 -> 192 -> 384 -> 768, 1 -> 8 heads); K/V are pooled more strongly early on
(adaptive stride [1,4,4] divided by the Q strides so far). Attention adds decomposed relative positions
(separate tables along t, h and w, each term ``q · R[dist]``) and the residual pooling connection
(``out += pooled q``). At 8 frames of 224² the output is (B, 1 + 4·7·7, 768).

The relative-position terms are folded into the one ``attend`` of ``tempovl.layers.attention``: with
``q' = [q/sqrt(Dh), q·R_t, q·R_h, q·R_w]`` and ``k' = [k, onehot(t_k), onehot(h_k), onehot(w_k)]``
the dot product ``q'·k'`` is exactly ``q·k/sqrt(Dh) + bias``, so no (Lq, Lk) bias is materialised.

Weights of the public HiTeA release (ModelScope ``damo/multi-modal_hitea_*``; its ``MViTv2`` lives under
the prefix ``visual_encoder.``) map onto this module by name; :func:`hitea_video_key_map` strips the
prefix, :func:`adapt_rel_pos_tables` resizes relative-position tables built for another frame count:

=====================================================  ============================================
release key (after ``visual_encoder.``)                 this module
=====================================================  ============================================
``patch_embed.proj.{weight,bias}`` (Conv3d)             ``patch_embed.proj``
``cls_token`` (1, 1, 96)                                ``cls_token``
``blocks.{i}.norm1 / norm2``                            same
``blocks.{i}.attn.qkv`` (fused Linear, bias)            ``blocks.{i}.attn.qkv``
``blocks.{i}.attn.proj``                                same
``blocks.{i}.attn.pool_{q,k,v}.weight`` (no bias)       same
``blocks.{i}.attn.norm_{q,k,v}``                        same
``blocks.{i}.attn.rel_pos_{h,w,t}``                     same (resized at run time if needed)
``blocks.{i}.mlp.fc1 / fc2``                            same
``blocks.{i}.proj`` (first block of stages 2-4)         same
``norm``                                                same
(none; the release's ``head`` is Identity)              ``out_proj`` only when ``out_dim`` differs
=====================================================  ============================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from tempovl.errors import ConfigError
from tempovl.layers.attention import attend
from tempovl.layers.transformer import MLP

LN_EPS = 1e-6


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch per sample with probability p."""
    if p == 0.0 or not training:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


@dataclass
class MViTConfig:
    """MViTv2 sizes. Defaults are HiTeA's MViTv2-B (24 blocks, stages [2, 3, 16, 3], 96 -> 768)."""

    embed_dim: int = 96
    depth: int = 24
    num_heads: int = 1
    stage_ends: tuple[int, ...] = (1, 4, 20, 23)  # index of each stage's last block
    dim_mul: float = 2.0  # width multiplier at each new stage
    head_mul: float = 2.0  # head-count multiplier at each new stage
    pool_q_stride: tuple[int, ...] = (1, 2, 2)  # Q stride (t, h, w) of each stage's first block
    pool_kv_stride_adaptive: tuple[int, ...] = (1, 4, 4)  # K/V stride of block 0, divided by Q strides
    pool_kernel: tuple[int, ...] = (3, 3, 3)
    patch_kernel: tuple[int, ...] = (3, 7, 7)
    patch_stride: tuple[int, ...] = (2, 4, 4)
    patch_padding: tuple[int, ...] = (1, 3, 3)
    image_size: int = 224  # sizes the relative-position tables; other sizes are interpolated
    num_frames: int = 8
    mlp_ratio: float = 4.0
    rel_pos: bool = True
    residual_pooling: bool = True
    out_dim: int = 768  # a Linear `out_proj` is added when this differs from the last stage's width
    drop_path: float = 0.0
    grad_checkpoint: bool = False
    attn_impl: str = "auto"

    def __post_init__(self) -> None:
        for name in (
            "pool_q_stride",
            "pool_kv_stride_adaptive",
            "pool_kernel",
            "patch_kernel",
            "patch_stride",
        ):
            if len(getattr(self, name)) != 3:
                raise ConfigError(f"mvit.{name}: expected 3 values (t, h, w), got {getattr(self, name)}")
        ends = list(self.stage_ends)
        if not ends or ends != sorted(set(ends)) or ends[0] < 0 or ends[-1] != self.depth - 1:
            raise ConfigError(
                f"mvit.stage_ends: must increase and end at depth - 1 = {self.depth - 1}, got {ends}"
            )
        for s in range(len(ends)):
            dim, heads = self.stage_dim(s), self.stage_heads(s)
            if dim % heads:
                raise ConfigError(f"mvit: stage {s} width {dim} is not divisible by its {heads} heads")

    def stage_dim(self, s: int) -> int:
        return int(round(self.embed_dim * self.dim_mul**s))

    def stage_heads(self, s: int) -> int:
        return int(round(self.num_heads * self.head_mul**s))

    def block_stage(self, i: int) -> int:
        return next(s for s, end in enumerate(self.stage_ends) if i <= end)


def mvit_base_config(**overrides) -> MViTConfig:
    """MViTv2-B as in the HiTeA release."""
    return MViTConfig(**overrides)


def mvit_tiny_config(**overrides) -> MViTConfig:
    """A 4-block MViT for tests and CPU demos: stages [2, 1, 1], width 16 -> 64, projected to 32."""
    kw = dict(
        embed_dim=16, depth=4, num_heads=1, stage_ends=(1, 2, 3), image_size=32, num_frames=4, out_dim=32
    )
    kw.update(overrides)
    return MViTConfig(**kw)


class PatchEmbed(nn.Module):
    """Conv3d patch embedding: (B, 3, T, H, W) -> tokens (B, T'·H'·W', D) and the grid (T', H', W')."""

    def __init__(self, dim: int, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]):
        super().__init__()
        self.proj = nn.Conv3d(3, dim, kernel_size=kernel, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        x = self.proj(x)  # (B, D, T', H', W')
        thw = (x.shape[2], x.shape[3], x.shape[4])
        return x.flatten(2).transpose(1, 2), thw  # (B, D, L) -> (B, L, D)


def pool_tokens(
    x: torch.Tensor, pool: nn.Module | None, thw: tuple[int, int, int], norm: nn.Module | None = None
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Pool the token grid of x (B, H, 1 + T·h·w, C) (cls first, never pooled) -> (B, H, 1 + L', C), grid."""
    if pool is None:
        return x, thw
    cls_tok, tokens = x[:, :, :1], x[:, :, 1:]
    b, nh, _, c = tokens.shape
    t, h, w = thw
    grid = tokens.reshape(b * nh, t, h, w, c).permute(0, 4, 1, 2, 3)  # (B·H, C, T, h, w)
    grid = pool(grid)
    new_thw = (grid.shape[2], grid.shape[3], grid.shape[4])
    tokens = grid.flatten(2).transpose(1, 2).reshape(b, nh, -1, c)  # (B·H, C, L') -> (B, H, L', C)
    x = torch.cat([cls_tok, tokens], dim=2)
    return (x if norm is None else norm(x)), new_thw


def resize_rel_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """A relative-position table (L, C) linearly resized to (length, C)."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.t()[None], size=length, mode="linear")  # (1, C, L) -> (1, C, length)
    return resized[0].t()


def rel_pos_index(q_size: int, k_size: int) -> torch.Tensor:
    """(q_size, k_size) indices into a table of 2·max(q, k) - 1 offsets; pooled axes are scaled up."""
    q_ratio, k_ratio = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    dist = torch.arange(q_size)[:, None] * q_ratio - torch.arange(k_size)[None, :] * k_ratio
    return (dist + (k_size - 1) * k_ratio).long()


def axis_rel_pos(table: torch.Tensor, q_size: int, k_size: int) -> torch.Tensor:
    """R (q_size, k_size, C): the table entry for every (query, key) coordinate pair along one axis."""
    table = resize_rel_table(table, 2 * max(q_size, k_size) - 1)
    return table[rel_pos_index(q_size, k_size).to(table.device)]


class MultiScaleAttention(nn.Module):
    """Pooling attention: fused qkv, conv-pooled Q/K/V, decomposed relative positions, residual pooling."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        grid: tuple[int, int, int],
        kernel: tuple[int, ...],
        stride_q: tuple[int, ...],
        stride_kv: tuple[int, ...],
        rel_pos: bool = True,
        residual_pooling: bool = True,
        impl: str = "auto",
    ):
        super().__init__()
        self.num_heads, self.head_dim, self.dim_out = num_heads, dim_out // num_heads, dim_out
        self.rel_pos, self.residual_pooling, self.impl = rel_pos, residual_pooling, impl
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)
        padding = tuple(k // 2 for k in kernel)
        dh = self.head_dim

        def conv(stride: tuple[int, ...]) -> nn.Conv3d:  # depthwise over the head dim, shared by heads
            return nn.Conv3d(dh, dh, kernel, stride=stride, padding=padding, groups=dh, bias=False)

        self.pool_q, self.norm_q = conv(stride_q), nn.LayerNorm(dh, eps=LN_EPS)
        self.pool_k, self.norm_k = conv(stride_kv), nn.LayerNorm(dh, eps=LN_EPS)
        self.pool_v, self.norm_v = conv(stride_kv), nn.LayerNorm(dh, eps=LN_EPS)
        if rel_pos:
            t, h, w = grid
            size_h = 2 * max(h // stride_q[1], h // stride_kv[1]) - 1
            size_w = 2 * max(w // stride_q[2], w // stride_kv[2]) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(size_h, dh))
            self.rel_pos_w = nn.Parameter(torch.zeros(size_w, dh))
            self.rel_pos_t = nn.Parameter(torch.zeros(2 * t - 1, dh))
            nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
            nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def pooled_qkv(self, x: torch.Tensor, thw: tuple[int, int, int]) -> tuple[torch.Tensor, ...]:
        """x (B, 1 + L, D) -> q (B, H, 1 + Lq, Dh), k, v (B, H, 1 + Lk, Dh), q grid, k grid."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (B, N, 3, H, Dh) -> (3, B, H, N, Dh)
        q, q_thw = pool_tokens(qkv[0], self.pool_q, thw, self.norm_q)
        k, k_thw = pool_tokens(qkv[1], self.pool_k, thw, self.norm_k)
        v, _ = pool_tokens(qkv[2], self.pool_v, thw, self.norm_v)
        return q, k, v, q_thw, k_thw

    def rel_pos_features(
        self, q: torch.Tensor, q_thw: tuple[int, int, int], k_thw: tuple[int, int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features whose dot product is the decomposed bias: (B, H, 1 + Lq, R) for q, (1 + Lk, R) for k.

        R = kt + kh + kw. Query (t, h, w) carries ``q·R_t[t, :]``, ``q·R_h[h, :]``, ``q·R_w[w, :]``; key
        (t', h', w') carries one-hots at t', h', w'; the cls row and column carry zeros (no bias).
        """
        b, nh, _, dh = q.shape
        (qt, qh, qw), (kt, kh, kw) = q_thw, k_thw
        r_t = axis_rel_pos(self.rel_pos_t, qt, kt).to(q.dtype)  # (qt, kt, Dh)
        r_h = axis_rel_pos(self.rel_pos_h, qh, kh).to(q.dtype)  # (qh, kh, Dh)
        r_w = axis_rel_pos(self.rel_pos_w, qw, kw).to(q.dtype)  # (qw, kw, Dh)
        q_grid = q[:, :, 1:].reshape(b, nh, qt, qh, qw, dh)
        rel_t = torch.einsum("bnthwc,tkc->bnthwk", q_grid, r_t)  # (B, H, qt, qh, qw, kt)
        rel_h = torch.einsum("bnthwc,hkc->bnthwk", q_grid, r_h)  # (B, H, qt, qh, qw, kh)
        rel_w = torch.einsum("bnthwc,wkc->bnthwk", q_grid, r_w)  # (B, H, qt, qh, qw, kw)
        q_rel = torch.cat([rel_t, rel_h, rel_w], dim=-1).flatten(2, 4)  # (B, H, Lq, R)
        q_rel = F.pad(q_rel, (0, 0, 1, 0))  # zero row for the cls query -> (B, H, 1 + Lq, R)
        eye_t, eye_h, eye_w = (torch.eye(n, dtype=q.dtype, device=q.device) for n in (kt, kh, kw))
        one_hots = [
            eye_t[:, None, None, :].expand(kt, kh, kw, kt),
            eye_h[None, :, None, :].expand(kt, kh, kw, kh),
            eye_w[None, None, :, :].expand(kt, kh, kw, kw),
        ]
        k_rel = torch.cat(one_hots, dim=-1).reshape(kt * kh * kw, -1)  # (kt, kh, kw, R) -> (Lk, R)
        return q_rel, F.pad(k_rel, (0, 0, 1, 0))  # zero row for the cls key -> (1 + Lk, R)

    def forward(
        self, x: torch.Tensor, thw: tuple[int, int, int]
    ) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """x (B, 1 + L, D_in) on grid thw -> (B, 1 + L', D_out) on the Q-pooled grid."""
        q, k, v, q_thw, k_thw = self.pooled_qkv(x, thw)
        if self.rel_pos:
            q_rel, k_rel = self.rel_pos_features(q, q_thw, k_thw)
            pad = -(self.head_dim + q_rel.shape[-1]) % 8  # zero columns: kernels prefer head dims of 8·n
            q_rel, k_rel = F.pad(q_rel, (0, pad)), F.pad(k_rel, (0, pad))
            d_aug = self.head_dim + q_rel.shape[-1]
            # attend divides by sqrt(d_aug): pre-scale so that q'·k'/sqrt(d_aug) = q·k/sqrt(Dh) + bias
            q_aug = torch.cat([q * self.head_dim**-0.5, q_rel], dim=-1) * math.sqrt(d_aug)
            k_aug = torch.cat([k, k_rel.expand(k.shape[0], k.shape[1], -1, -1)], dim=-1)
            # v padded to the same head dim: fused (flash) kernels need equal q/k/v widths (3x faster on CPU)
            v_aug = F.pad(v, (0, d_aug - self.head_dim))
            out = attend(q_aug, k_aug, v_aug, None, impl=self.impl)  # (B, H, 1 + Lq, d_aug)
            out = out[..., : self.head_dim]
        else:
            out = attend(q, k, v, None, impl=self.impl)
        if self.residual_pooling:  # pooled q added back to every token except cls
            out = torch.cat([out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]], dim=2)
        b, nh, n, dh = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, nh * dh)), q_thw  # (B, H, N, Dh) -> (B, N, D)


class MultiScaleBlock(nn.Module):
    """Pre-LN block: pooled attention (+ width change inside attention), max-pooled skip, MLP."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        grid: tuple[int, int, int],
        cfg: MViTConfig,
        stride_q: tuple[int, ...],
        stride_kv: tuple[int, ...],
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = MultiScaleAttention(
            dim, dim_out, num_heads, grid, cfg.pool_kernel, stride_q, stride_kv,
            cfg.rel_pos, cfg.residual_pooling, cfg.attn_impl,
        )  # fmt: skip
        self.norm2 = nn.LayerNorm(dim_out, eps=LN_EPS)
        self.mlp = MLP(dim_out, int(dim_out * cfg.mlp_ratio))
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None
        if any(s > 1 for s in stride_q):  # skip connection pooled like Q: kernel s + 1 where s > 1
            kernel = tuple(s + 1 if s > 1 else s for s in stride_q)
            self.pool_skip = nn.MaxPool3d(kernel, stride_q, tuple(k // 2 for k in kernel))
        else:
            self.pool_skip = None

    def forward(
        self, x: torch.Tensor, thw: tuple[int, int, int]
    ) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """x (B, 1 + L, D) -> (B, 1 + L', D_out), new grid."""
        x_norm = self.norm1(x)
        x_attn, new_thw = self.attn(x_norm, thw)
        if self.proj is not None:  # the width changes: the skip is projected from the normed input
            x = self.proj(x_norm)
        skip, _ = pool_tokens(x[:, None], self.pool_skip, thw)  # (B, 1, 1 + L', D_out)
        x = skip[:, 0] + drop_path(x_attn, self.drop_path, self.training)
        x = x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)
        return x, new_thw


class MViT(nn.Module):
    """MViTv2 over raw frames: video (B, T, 3, H, W) -> (B, 1 + M, out_dim) = [v_cls, v_1..v_M]."""

    def __init__(self, cfg: MViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.embed_dim, cfg.patch_kernel, cfg.patch_stride, cfg.patch_padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        grid = (
            max(cfg.num_frames // cfg.patch_stride[0], 1),
            cfg.image_size // cfg.patch_stride[1],
            cfg.image_size // cfg.patch_stride[2],
        )
        stage_starts = {end + 1 for end in cfg.stage_ends[:-1]}
        stride_kv = tuple(cfg.pool_kv_stride_adaptive)
        dim = cfg.embed_dim
        self.blocks = nn.ModuleList()
        for i in range(cfg.depth):
            s = cfg.block_stage(i)
            dim_out, heads = cfg.stage_dim(s), cfg.stage_heads(s)
            stride_q = tuple(cfg.pool_q_stride) if i in stage_starts else (1, 1, 1)
            stride_kv = tuple(max(kv // q, 1) for kv, q in zip(stride_kv, stride_q))
            dpr = cfg.drop_path * i / max(cfg.depth - 1, 1)
            self.blocks.append(MultiScaleBlock(dim, dim_out, heads, grid, cfg, stride_q, stride_kv, dpr))
            grid = tuple(g // q for g, q in zip(grid, stride_q))
            dim = dim_out
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.out_proj = nn.Linear(dim, cfg.out_dim) if cfg.out_dim != dim else None
        self.out_dim = cfg.out_dim
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, 3, H, W), normalised -> (B, 1 + M, out_dim) with M = T'·H'·W' of the last stage."""
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"MViT expects video (B, T, 3, H, W), got {tuple(video.shape)}")
        x, thw = self.patch_embed(video.transpose(1, 2))  # (B, T, 3, H, W) -> (B, 3, T, H, W) -> (B, L, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + L, D)
        for block in self.blocks:
            if self.cfg.grad_checkpoint and self.training:
                x, thw = torch.utils.checkpoint.checkpoint(block, x, thw, use_reentrant=False)
            else:
                x, thw = block(x, thw)
        x = self.norm(x)
        return x if self.out_proj is None else self.out_proj(x)


def hitea_video_key_map(release_keys: Iterable[str], prefix: str = "visual_encoder.") -> dict[str, str]:
    """Release key -> MViT key for the video-encoder entries of a HiTeA ModelScope state dict.

    Keeps keys under ``prefix`` (``visual_encoder_m.`` selects the momentum copy), drops a leading
    ``module.``, the prefix and any activation-checkpoint wrapper segment; names are otherwise equal.
    """
    mapping = {}
    for key in release_keys:
        name = key[len("module.") :] if key.startswith("module.") else key
        if not name.startswith(prefix):
            continue
        name = name[len(prefix) :]
        for wrapper in ("_checkpoint_wrapped_module.", "_fsdp_wrapped_module."):
            name = name.replace(wrapper, "")
        mapping[key] = name
    return mapping


def adapt_rel_pos_tables(state_dict: dict[str, torch.Tensor], model: MViT) -> dict[str, torch.Tensor]:
    """Linearly resize ``rel_pos_{t,h,w}`` tables (e.g. a 16-frame release onto an 8-frame model)."""
    own = model.state_dict()
    out = dict(state_dict)
    for key, table in state_dict.items():
        if key.rsplit(".", 1)[-1] in ("rel_pos_t", "rel_pos_h", "rel_pos_w") and key in own:
            out[key] = resize_rel_table(table.float(), own[key].shape[0]).to(table.dtype)
    return out
