"""Blocks shared by every model: one attention, transformer blocks, embeddings, the LM head."""

from tempovl.layers.attention import Attention, attend, expand_mask
from tempovl.layers.embeddings import FrameEmbedding, TextEmbedding
from tempovl.layers.heads import LMHead
from tempovl.layers.transformer import MLP, Transformer, TransformerBlock

__all__ = [
    "Attention",
    "attend",
    "expand_mask",
    "FrameEmbedding",
    "TextEmbedding",
    "LMHead",
    "MLP",
    "Transformer",
    "TransformerBlock",
]
