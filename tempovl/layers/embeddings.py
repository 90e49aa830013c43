"""Input embedders shared by the models: text tokens and pre-extracted frame features."""

from __future__ import annotations

import torch
from torch import nn


class TextEmbedding(nn.Module):
    """token + position (+ token type) embeddings, LayerNorm, dropout (BERT/RoBERTa style).

    ``position_offset`` is RoBERTa's: its positions start at padding_idx + 1.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        max_positions: int = 512,
        type_vocab_size: int = 0,
        pad_id: int = 0,
        ln_eps: float = 1e-12,
        dropout: float = 0.1,
        position_offset: int = 0,
    ):
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position = nn.Embedding(max_positions + position_offset, dim)
        self.token_type = nn.Embedding(type_vocab_size, dim) if type_vocab_size else None
        self.norm = nn.LayerNorm(dim, eps=ln_eps)
        self.drop = nn.Dropout(dropout)
        self.position_offset = position_offset

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, L) -> (B, L, D). Positions default to 0..L-1 (+ offset)."""
        if position_ids is None:
            position_ids = (
                torch.arange(input_ids.shape[1], device=input_ids.device)[None] + self.position_offset
            )
        x = self.word(input_ids) + self.position(position_ids)
        if self.token_type is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.token_type(token_type_ids)
        return self.drop(self.norm(x))


class FrameEmbedding(nn.Module):
    """FC(feature dim -> d) + position embeddings, LayerNorm, dropout (HERO's Video Embedder)."""

    def __init__(
        self, feat_dim: int, dim: int, max_positions: int = 512, ln_eps: float = 1e-12, dropout: float = 0.1
    ):
        super().__init__()
        self.proj = nn.Linear(feat_dim, dim)
        self.position = nn.Embedding(max_positions, dim)
        self.norm = nn.LayerNorm(dim, eps=ln_eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, frame_feats: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """frame_feats (B, T, F) -> (B, T, D)."""
        if position_ids is None:
            position_ids = torch.arange(frame_feats.shape[1], device=frame_feats.device)[None]
        return self.drop(self.norm(self.proj(frame_feats) + self.position(position_ids)))
