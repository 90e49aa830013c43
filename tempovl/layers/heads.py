"""The one language-model head (BERT's ``BertLMPredictionHead``), shared by HERO's MLM and TVC decoder and
by HiTeA's MLM, PrefixLM and decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> the (tied) word-embedding matrix + bias.

    The word matrix is passed at call time so that the decoder stays tied to whichever embedding the model
    owns. ``keep`` cuts the logits to the real vocabulary when the embedding table is padded (HERO pads
    RoBERTa's 50,265 rows to a multiple of 8)."""

    def __init__(self, dim: int, vocab_size: int, eps: float = 1e-12, keep: int | None = None):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.keep = keep

    def forward(self, x: torch.Tensor, word_weight: torch.Tensor) -> torch.Tensor:
        """x (..., D), word_weight (V, D) -> logits (..., V) (or (..., keep))."""
        logits = F.linear(self.norm(F.gelu(self.dense(x))), word_weight, self.bias)
        return logits if self.keep is None else logits[..., : self.keep]
