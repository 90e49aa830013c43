"""The one attention of tempovl: multi-head self- or cross-attention with boolean masks.

Masks are boolean with True = may attend. A mask may be a key-padding mask (B, Lk), a full mask
(B, Lq, Lk) (block-diagonal masks let many short sequences be packed into one row), or anything that
broadcasts to (B, H, Lq, Lk). A query row with no valid key attends uniformly instead of producing NaN.

Two kernels compute the same thing: torch's ``scaled_dot_product_attention`` ("sdpa") and the explicit
``softmax(QK^T / sqrt(d)) V`` ("math"). On CPU in bf16 the explicit form is faster for the short
sequences of HERO's per-sentence cross-modal pass (see benchmarks/bench_attention.py); "auto" picks
"math" for short sequences under bf16 autocast on CPU, and "sdpa" otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

AUTO_MATH_MAX_LEN = 128  # "auto" uses the math kernel on CPU/bf16 when Lk is at most this


def expand_mask(mask: torch.Tensor | None, q_len: int) -> torch.Tensor | None:
    """Key-padding (B, Lk) or full (B, Lq, Lk) boolean mask -> (B, 1, Lq|1, Lk)."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"attention masks are boolean (True = attend), got {mask.dtype}")
    if mask.dim() == 2:  # (B, Lk) -> (B, 1, 1, Lk)
        return mask[:, None, None, :]
    if mask.dim() == 3:  # (B, Lq, Lk) -> (B, 1, Lq, Lk)
        return mask[:, None, :, :]
    return mask


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    impl: str = "auto",
) -> torch.Tensor:
    """q (B, H, Lq, Dh), k/v (B, H, Lk, Dh), mask bool broadcastable to (B, H, Lq, Lk) -> (B, H, Lq, Dh)."""
    bias = None
    if mask is not None:
        # additive bias with the dtype's min (not -inf): a fully masked row becomes uniform, never NaN
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device)
        bias.masked_fill_(~mask, torch.finfo(q.dtype).min)
    if impl == "auto":
        short_bf16_cpu = (
            q.device.type == "cpu" and q.dtype == torch.bfloat16 and k.shape[-2] <= AUTO_MATH_MAX_LEN
        )
        impl = "math" if short_bf16_cpu else "sdpa"
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
    if impl != "math":
        raise ValueError(f"unknown attention impl {impl!r} (auto, sdpa, math)")
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, Lq, Lk)
    if bias is not None:
        scores = scores + bias
    probs = scores.softmax(dim=-1)
    if dropout_p > 0:
        probs = F.dropout(probs, p=dropout_p)
    return torch.matmul(probs, v)


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections (easy to map onto BERT-style checkpoints).

    Self-attention when ``kv`` is None; cross-attention to ``kv`` (of width ``kv_dim``) otherwise.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kv_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        impl: str = "auto",
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads, self.head_dim, self.dropout, self.impl = num_heads, dim // num_heads, dropout, impl
        self.q = nn.Linear(dim, dim, bias=bias)
        self.k = nn.Linear(kv_dim, dim, bias=bias)
        self.v = nn.Linear(kv_dim, dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, L, D) -> (B, H, L, Dh)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        kv: torch.Tensor | None = None,
        cache: dict | None = None,
    ) -> torch.Tensor:
        """x (B, Lq, D); kv (B, Lk, kv_dim) or None; mask bool (B, Lk) | (B, Lq, Lk) -> (B, Lq, D).

        ``cache`` (decoding): a dict this call fills with the projected keys/values. Self-attention appends
        the new positions' keys/values to what it holds (x is then the new positions only, and ``mask``
        covers all keys so far, or None); cross-attention projects ``kv`` once and reuses it."""
        if cache is not None and kv is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            src = x if kv is None else kv
            k, v = self._heads(self.k(src)), self._heads(self.v(src))
            if cache is not None:
                if kv is None and "k" in cache:
                    k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        q = self._heads(self.q(x))
        out = attend(
            q, k, v, expand_mask(mask, x.shape[1]), self.dropout if self.training else 0.0, self.impl
        )
        b, h, n, dh = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, h * dh))  # (B, H, L, Dh) -> (B, L, D)
