"""Transformer blocks shared by every model: post-LN (BERT/RoBERTa, HERO, HiTeA's text side) or pre-LN
(ViT/TimeSformer), optionally with cross-attention (HiTeA's multimodal encoder and decoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tempovl.layers.attention import Attention

ACTIVATIONS = {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}


class MLP(nn.Module):
    def __init__(
        self, dim: int, hidden: int, dropout: float = 0.0, act: str = "gelu", out_dim: int | None = None
    ):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim or dim)
        self.act = ACTIVATIONS[act]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class TransformerBlock(nn.Module):
    """Self-attention [+ cross-attention] + MLP, each with a residual and a LayerNorm.

    ``norm_first=False`` is BERT's post-LN: ``x = LN(x + f(x))``; ``True`` is pre-LN: ``x = x + f(LN(x))``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int | None = None,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        norm_first: bool = False,
        ln_eps: float = 1e-12,
        cross_attention: bool = False,
        kv_dim: int | None = None,
        act: str = "gelu",
        attn_impl: str = "auto",
    ):
        super().__init__()
        self.norm_first = norm_first
        self.attn = Attention(dim, num_heads, dropout=attn_dropout, impl=attn_impl)
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.cross_attn = (
            Attention(dim, num_heads, kv_dim=kv_dim, dropout=attn_dropout, impl=attn_impl)
            if cross_attention
            else None
        )
        self.norm_cross = nn.LayerNorm(dim, eps=ln_eps) if cross_attention else None
        self.mlp = MLP(dim, mlp_hidden or 4 * dim, dropout=0.0, act=act)
        self.norm2 = nn.LayerNorm(dim, eps=ln_eps)
        self.drop = nn.Dropout(dropout)

    def _residual(self, x: torch.Tensor, norm: nn.LayerNorm, fn) -> torch.Tensor:
        if self.norm_first:
            return x + self.drop(fn(norm(x)))
        return norm(x + self.drop(fn(x)))

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        kv: torch.Tensor | None = None,
        kv_mask: torch.Tensor | None = None,
        cache: dict | None = None,
    ) -> torch.Tensor:
        """x (B, L, D); mask bool (B, L) | (B, L, L); kv (B, Lk, Dkv) for cross-attention; kv_mask (B, Lk).
        ``cache``: the decoding key/value cache of this block (see :class:`Attention`)."""
        self_cache = None if cache is None else cache.setdefault("self", {})
        x = self._residual(x, self.norm1, lambda h: self.attn(h, mask, cache=self_cache))
        if self.cross_attn is not None:
            if kv is None:
                raise ValueError("this block has cross-attention: pass kv")
            cross_cache = None if cache is None else cache.setdefault("cross", {})
            x = self._residual(
                x, self.norm_cross, lambda h: self.cross_attn(h, kv_mask, kv=kv, cache=cross_cache)
            )
        return self._residual(x, self.norm2, self.mlp)


class Transformer(nn.Module):
    """A stack of TransformerBlocks with the same settings (pre-LN stacks end with a final LayerNorm)."""

    def __init__(self, depth: int, dim: int, num_heads: int, final_norm: bool | None = None, **block_kwargs):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, **block_kwargs) for _ in range(depth))
        norm_first = block_kwargs.get("norm_first", False)
        use_final = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(dim, eps=block_kwargs.get("ln_eps", 1e-12)) if use_final else None

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        kv: torch.Tensor | None = None,
        kv_mask: torch.Tensor | None = None,
        cache: list[dict] | None = None,
    ) -> torch.Tensor:
        """``cache``: a decoding key/value cache, see :func:`block_caches`."""
        for block, block_cache in zip(self.blocks, block_caches(cache, len(self.blocks)), strict=True):
            x = block(x, mask, kv, kv_mask, block_cache)
        return x if self.norm is None else self.norm(x)


def block_caches(cache: list[dict] | None, depth: int) -> list[dict | None]:
    """The per-block dicts of a decoding key/value cache (a list, empty at the first step, that this fills
    with one dict per block), or ``depth`` Nones without a cache."""
    if cache is None:
        return [None] * depth
    cache.extend({} for _ in range(depth - len(cache)))
    return cache
