"""HERO: a hierarchical encoder over frame features and subtitles (Li et al. 2020, section 3).

The layout follows the official code (linjieli222/HERO) so that its checkpoints convert one-to-one
(``tempovl/convert/hero_official.py``):

* Cross-modal Transformer, run per subtitle sentence over ``[its frames ; its tokens]``. Frames are
  embedded as ``LN(Linear(LN(feat + mask_emb)) + pos + type)``, tokens as ``LN(word + pos + type)``;
  positions restart at 0 for the frames and for the tokens of every sentence, and both modalities add
  token-type row 1 (the official code's ``ones(1, 1)`` default). Embedding LayerNorms use eps 1e-5,
  the transformer layers 1e-12, as in the official code.
* Temporal Transformer over all frames of the clip. Its input is ``V_emb + V_cross`` where, in the
  official code, ``V_emb = ReLU(Linear(Dropout(LN(feat))))`` is a separate frame transform (the paper
  says "the output of the frame embedder"; ``temporal_residual: embedding`` selects that variant);
  position embeddings and a LayerNorm are added before the layers.
* Query encoder (VSM and retrieval): the Cross-modal Transformer alone over the query tokens, then
  ``LN/Linear/ReLU`` input projection, position embeddings, one BERT self-attention layer and an
  attention pooling (``layers.pooling.AttentionPool``: a ``d -> 1`` scoring vector, softmax over tokens).
* Heads: MLM (tied to the word embeddings), MFFR regression (shared with MNCE, as in the official
  code), FOM classifier over ``max_clip_len`` positions, VSM query projection + two 1-D convolutions.

Packing. The per-sentence cross-modal pass would waste most of its compute on padding if every
sentence were padded to the longest one. :func:`tempovl.data.packing.pack_clips` instead places whole sentence groups
(``frames + tokens``) of the whole batch into rows of a fixed slot budget (first-fit decreasing), and the
model attends with a block-diagonal mask (a slot only sees slots of its own group). Positions restart
per group, so the result equals running every sentence alone. ``max_len=None`` gives one group per row
(plain padding), which the benchmark compares against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tempovl.errors import ConfigError
from tempovl.layers.attention import Attention
from tempovl.layers.embeddings import TextEmbedding
from tempovl.layers.heads import LMHead
from tempovl.layers.pooling import AttentionPool
from tempovl.layers.transformer import Transformer
from tempovl.models.text import BERT_NAMES, BERT_SELF_LAYER, load_bert_state
from tempovl.registry import register_model


@dataclass
class HeroConfig:
    vocab_size: int = 50272  # RoBERTa's 50265 padded to a multiple of 8, as the official code does
    text_vocab_size: int = 50265  # real vocabulary: MLM logits are cut to it
    hidden: int = 768
    num_heads: int = 12
    mlp_hidden: int = 3072
    cross_layers: int = 6
    temporal_layers: int = 3
    frame_dim: int = 4352  # ResNet-152 2048 + SlowFast 2304
    max_text_positions: int = 514
    max_frame_positions: int = 100  # frame positions inside one sentence (official MAX_FRM_SEQ_LEN)
    max_temporal_positions: int = 514
    max_clip_len: int = 100  # FOM classes (frames per clip)
    type_vocab_size: int = 2
    text_type_id: int = 1
    frame_type_id: int = 1
    pad_id: int = 1  # RoBERTa <pad>
    embed_ln_eps: float = 1e-5
    layer_ln_eps: float = 1e-12
    dropout: float = 0.1
    attn_dropout: float = 0.1
    attn_impl: Literal["auto", "sdpa", "math"] = "auto"
    temporal_residual: Literal["transform", "embedding"] = "transform"
    vsm_conv_kernel: int = 5
    pack_max_len: int = 128  # slot budget of a packed cross-modal row
    init_std: float = 0.02
    text_init: str | None = None  # local Hugging Face BERT/RoBERTa directory
    text_init_layers: list[int] | None = None  # which of its layers; None = all, or every k-th


# ------------------------------------------------------------------------------- packed attention


def block_mask(pack_group: torch.Tensor) -> torch.Tensor:
    """(R, L) group ids -> (R, L, L) bool: slot i may attend to slot j of the same (real) group."""
    return (pack_group[:, :, None] == pack_group[:, None, :]) & (pack_group[:, None, :] >= 0)


# ------------------------------------------------------------------------------------------ modules


class CrossFrameEmbedding(nn.Module):
    """Frames inside the cross-modal pass: LN(feat + mask_emb) -> Linear, + position + type, LN."""

    def __init__(self, cfg: HeroConfig):
        super().__init__()
        self.in_norm = nn.LayerNorm(cfg.frame_dim, eps=cfg.embed_ln_eps)
        self.proj = nn.Linear(cfg.frame_dim, cfg.hidden)
        self.position = nn.Embedding(cfg.max_frame_positions, cfg.hidden)
        self.mask_embedding = nn.Embedding(2, cfg.frame_dim, padding_idx=0)  # row 1 marks MFM-masked frames
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.embed_ln_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def project(self, frame_feats: torch.Tensor, frame_masked: torch.Tensor | None) -> torch.Tensor:
        """frame_feats (N, F) -> (N, D): the per-frame part, computed once per frame."""
        if frame_masked is not None:
            frame_feats = frame_feats.masked_fill(frame_masked[:, None], 0.0)
            frame_feats = frame_feats + self.mask_embedding(frame_masked.long())
        return self.proj(self.in_norm(frame_feats))

    def forward(
        self, projected: torch.Tensor, position_ids: torch.Tensor, type_emb: torch.Tensor
    ) -> torch.Tensor:
        """projected (R, L, D), position_ids (R, L), type_emb (D,) -> (R, L, D)."""
        return self.drop(self.norm(projected + self.position(position_ids) + type_emb))


class FrameTransform(nn.Module):
    """V_emb of the official temporal residual: ReLU(Linear(Dropout(LN(feat))))."""

    def __init__(self, cfg: HeroConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.frame_dim, eps=cfg.embed_ln_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(cfg.frame_dim, cfg.hidden)

    def forward(self, frame_feats: torch.Tensor) -> torch.Tensor:
        return F.relu(self.proj(self.drop(self.norm(frame_feats))))


class PositionNorm(nn.Module):
    """x + position embedding, LayerNorm, dropout (the Temporal Transformer's and query's embedder)."""

    def __init__(self, max_positions: int, dim: int, eps: float, dropout: float):
        super().__init__()
        self.position = nn.Embedding(max_positions, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) -> (B, L, D), positions 0..L-1."""
        return self.drop(self.norm(x + self.position(torch.arange(x.shape[1], device=x.device))[None]))


class QueryEncoder(nn.Module):
    """Official QueryFeatEncoder: input projection, positions, one self-attention layer, attention pooling."""

    def __init__(self, cfg: HeroConfig):
        super().__init__()
        self.input_norm = nn.LayerNorm(cfg.hidden, eps=cfg.embed_ln_eps)
        self.input_drop = nn.Dropout(cfg.dropout)
        self.input_proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.embed = PositionNorm(cfg.max_text_positions, cfg.hidden, cfg.embed_ln_eps, cfg.dropout)
        self.attn = Attention(cfg.hidden, cfg.num_heads, dropout=cfg.attn_dropout, impl=cfg.attn_impl)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.attn_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_ln_eps)
        self.pool = AttentionPool(cfg.hidden)

    def forward(self, token_states: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """token_states (N, L, D), token_mask (N, L) bool -> query vectors (N, D)."""
        x = self.embed(F.relu(self.input_proj(self.input_drop(self.input_norm(token_states)))))
        x = self.attn_norm(x + self.attn_drop(self.attn(x, token_mask)))
        return self.pool(x, token_mask, dim=1)


class GeluNormMLP(nn.Module):
    """Linear -> GELU -> LN -> Linear: the official MFFR regression and FOM (MLPLayer) heads."""

    def __init__(self, dim: int, hidden: int, out_dim: int, eps: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(F.gelu(self.fc1(x))))


# --------------------------------------------------------------------------------------------- model


@register_model("hero", HeroConfig)
class Hero(nn.Module):
    """The HERO encoder and its pre-training heads. See the module docstring for the layout."""

    def __init__(self, cfg: HeroConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        block = dict(
            mlp_hidden=cfg.mlp_hidden,
            dropout=cfg.dropout,
            attn_dropout=cfg.attn_dropout,
            ln_eps=cfg.layer_ln_eps,
            attn_impl=cfg.attn_impl,
        )
        self.text_embed = TextEmbedding(
            cfg.vocab_size,
            d,
            cfg.max_text_positions,
            cfg.type_vocab_size,
            cfg.pad_id,
            cfg.embed_ln_eps,
            cfg.dropout,
        )
        self.frame_embed = CrossFrameEmbedding(cfg)
        self.cross = Transformer(self._cross_depth(), d, cfg.num_heads, **block)
        self.frame_transform = FrameTransform(cfg)
        self.frame_mask_embedding = nn.Embedding(2, cfg.frame_dim, padding_idx=0)
        self.temporal_embed = PositionNorm(cfg.max_temporal_positions, d, cfg.embed_ln_eps, cfg.dropout)
        self.temporal = Transformer(self._temporal_depth(), d, cfg.num_heads, **block)
        self.query_encoder = QueryEncoder(cfg)
        # heads
        # BertLMPredictionHead, decoder tied to text_embed.word; logits cut to the real vocabulary
        self.mlm_head = LMHead(d, cfg.vocab_size, cfg.embed_ln_eps, keep=cfg.text_vocab_size)
        self.mffr_head = GeluNormMLP(d, d, cfg.frame_dim, cfg.embed_ln_eps)  # MNCE shares it (official)
        self.fom_head = GeluNormMLP(d, 2 * d, cfg.max_clip_len, cfg.embed_ln_eps)
        self.vsm_query_proj = nn.Linear(d, d)
        k = cfg.vsm_conv_kernel
        self.vsm_start = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.vsm_end = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.apply(self._init_weights)
        if cfg.text_init and self.text_embed.word.weight.device.type != "meta":
            load_text_init(self, cfg.text_init, cfg.text_init_layers)

    def _cross_depth(self) -> int:
        return self.cfg.cross_layers

    def _temporal_depth(self) -> int:
        return self.cfg.temporal_layers

    def _init_weights(self, m: nn.Module) -> None:
        """Official init: N(0, 0.02) for Linear/Embedding weights, zero biases, unit LayerNorms."""
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None and m.num_embeddings == 2:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()  # MFM mask embeddings: row 0 adds nothing
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _type(self, type_id: int, device: torch.device) -> torch.Tensor:
        return self.text_embed.token_type(torch.tensor(type_id, device=device))  # (D,)

    # -- cross-modal ---------------------------------------------------------------------------------

    def embed_packed(
        self, batch: dict, frame_feats: torch.Tensor, frame_masked: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embeddings of every packed slot (R, L, D): frames and tokens, each with group-local positions."""
        b, t, f = frame_feats.shape
        masked = None if frame_masked is None else frame_masked.reshape(b * t)
        projected = self.frame_embed.project(frame_feats.reshape(b * t, f), masked)  # (B*T, D)
        idx = batch["pack_frame_index"]
        is_frame = idx >= 0
        pos = batch["pack_position_ids"]
        frame_part = projected[idx.clamp(min=0)]  # (R, L, D)
        frame_part = self.frame_embed(
            frame_part,
            pos.clamp(max=self.cfg.max_frame_positions - 1),
            self._type(self.cfg.frame_type_id, idx.device),
        )
        token_types = torch.full_like(pos, self.cfg.text_type_id)
        token_part = self.text_embed(batch["pack_token_ids"], pos, token_types)
        return torch.where(is_frame[..., None], frame_part, token_part)

    def forward_cross(
        self, batch: dict, frame_feats: torch.Tensor, frame_masked: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-modal Transformer over the packed groups -> (frame_cross (B, T, D), packed (R, L, D)).

        A frame's cross-modal output is scattered back to its place in the clip (summed if a frame sat
        in several groups, zero if in none, as the official ``collect_frame_outputs``).
        """
        b, t, _ = frame_feats.shape
        x = self.embed_packed(batch, frame_feats, frame_masked)
        packed = self.cross(x, block_mask(batch["pack_group"]))
        return self._gather_frames(packed, batch["pack_frame_index"], b, t), packed

    @staticmethod
    def _gather_frames(packed: torch.Tensor, frame_index: torch.Tensor, b: int, t: int) -> torch.Tensor:
        d = packed.shape[-1]
        sel = frame_index >= 0
        out = packed.new_zeros(b * t, d).index_add(0, frame_index[sel], packed[sel])
        return out.view(b, t, d)  # (B*T, D) -> (B, T, D)

    # -- temporal ------------------------------------------------------------------------------------

    def frame_residual(
        self, frame_feats: torch.Tensor, frame_masked: torch.Tensor | None = None
    ) -> torch.Tensor:
        """V_emb (B, T, D) that is added to the cross-modal output before the Temporal Transformer."""
        if self.cfg.temporal_residual == "embedding":  # the paper's wording: the frame embedder's output
            b, t, f = frame_feats.shape
            masked = None if frame_masked is None else frame_masked.reshape(b * t)
            proj = self.frame_embed.project(frame_feats.reshape(b * t, f), masked).view(b, t, -1)
            pos = torch.arange(t, device=frame_feats.device).clamp(max=self.cfg.max_frame_positions - 1)
            return self.frame_embed(proj, pos[None], self._type(self.cfg.frame_type_id, frame_feats.device))
        if frame_masked is not None:
            frame_feats = frame_feats.masked_fill(frame_masked[..., None], 0.0)
            frame_feats = frame_feats + self.frame_mask_embedding(frame_masked.long())
        return self.frame_transform(frame_feats)

    def forward_temporal(
        self, frame_fused: torch.Tensor, frame_mask: torch.Tensor, frame_order: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Temporal Transformer over V_emb + V_cross (B, T, D) -> (B, T, D).

        ``frame_order (B, T)`` (FOM) moves the frame at t to position ``frame_order[b, t]`` first.
        """
        if frame_order is not None:
            frame_fused = torch.zeros_like(frame_fused).scatter(
                1, frame_order[..., None].expand_as(frame_fused), frame_fused
            )
        return self.temporal(self.temporal_embed(frame_fused), frame_mask)

    def encode(
        self,
        batch: dict,
        frame_masked: torch.Tensor | None = None,
        frame_order: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Full hierarchical encoding of a packed batch (``frame_feats (B, T, F)``, ``frame_mask (B, T)``
        and the :func:`tempovl.data.packing.pack_clips` tensors). ``frame_masked (B, T)``: MFM-masked
        frames (zeroed, mask embedding added); ``frame_order``: FOM shuffle. Token outputs stay in the
        packed layout."""
        frame_feats, frame_mask = batch["frame_feats"], batch["frame_mask"]
        frame_cross, packed = self.forward_cross(batch, frame_feats, frame_masked)
        frame_emb = self.frame_residual(frame_feats, frame_masked)
        frame_fused = frame_emb + frame_cross
        frame_temporal = self.forward_temporal(frame_fused, frame_mask, frame_order)
        return {
            "frame_emb": frame_emb,
            "frame_cross": frame_cross,
            "frame_fused": frame_fused,
            "frame_temporal": frame_temporal,
            "frame_mask": frame_mask,
            "token_cross": packed,
            "token_mask": (batch["pack_frame_index"] < 0) & (batch["pack_group"] >= 0),
        }

    forward = encode

    def encode_with_text(self, batch: dict, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Frame outputs (B, T, D) with a text (B, Lt) appended to the Temporal Transformer's input: HERO's
        QA / VIOLIN encoding (paper 3.3: the question-answer pair or statement joins every frame in the
        temporal pass). The text carries its own positions 0..Lt-1 and the text type."""
        feats, frame_mask = batch["frame_feats"], batch["frame_mask"]
        frame_cross, _ = self.forward_cross(batch, feats)
        frames = self.temporal_embed(self.frame_residual(feats) + frame_cross)  # (B, T, D)
        x = torch.cat([frames, self.embed_text(text_ids)], dim=1)
        return self.temporal(x, torch.cat([frame_mask, text_mask], dim=1))[:, : frames.shape[1]]

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Text embeddings (B, L, D) of one sequence per row: positions 0..L-1, the text type."""
        pos = torch.arange(ids.shape[1], device=ids.device)[None].expand_as(ids)
        return self.text_embed(ids, pos, torch.full_like(ids, self.cfg.text_type_id))

    # -- queries and heads ---------------------------------------------------------------------------

    def encode_query_tokens(self, query_ids: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        """Cross-modal Transformer alone over text (N, L) -> (N, L, D)."""
        return self.cross(self.embed_text(query_ids), query_mask)

    def encode_query(self, query_ids: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        """query_ids (N, L), query_mask (N, L) bool -> query vectors (N, D)."""
        return self.query_encoder(self.encode_query_tokens(query_ids, query_mask), query_mask)

    def mlm_logits(self, token_cross: torch.Tensor, mlm_labels: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) at the N masked slots (``mlm_labels != -100``), in row-major slot order."""
        return self.mlm_head(token_cross[mlm_labels != -100], self.text_embed.word.weight)

    def vsm_local_logits(
        self, query: torch.Tensor, frame_temporal: torch.Tensor, frame_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Start/end logits (N, T) of query n over its own clip n: conv1d over q·V_temp, padding -1e4."""
        sim = torch.einsum("nd,ntd->nt", self.vsm_query_proj(query), frame_temporal)
        # zero at padding before the convolution: the official code lets padded frames leak into the
        # last kernel_size // 2 real positions; equal to it for clips without padding
        sim = sim.masked_fill(~frame_mask, 0.0)[:, None]  # (N, T) -> (N, 1, T)
        start, end = self.vsm_start(sim)[:, 0], self.vsm_end(sim)[:, 0]
        return start.masked_fill(~frame_mask, -1e4), end.masked_fill(~frame_mask, -1e4)


# ----------------------------------------------------------------------------- text initialisation


def load_text_init(model: Hero, path: str | Path, layers: Sequence[int] | None = None) -> None:
    """Initialise the text side (embeddings + cross-modal layers) from a local HF BERT/RoBERTa.

    ``layers`` picks the source layers; by default all when the depths match, else every k-th
    (``k = n_src // n_ours``, layers k-1, 2k-1, ...: the official code's choice for 6 of RoBERTa's 12).
    Token-type rows 0 and 1 both start from the source's row 0 (the official ``init_type_embedding``).
    """
    state = load_bert_state(path)
    n_src = 1 + max((int(k.split(".")[2]) for k in state if k.startswith("encoder.layer.")), default=-1)
    n_ours = len(model.cross.blocks)
    if layers is None:
        gap = max(n_src // max(n_ours, 1), 1)
        layers = list(range(gap - 1, n_src, gap))[:n_ours]
    layers = list(layers)
    if len(layers) != n_ours or any(not 0 <= i < n_src for i in layers):
        raise ConfigError(
            f"model.text_init_layers: need {n_ours} layer indices in 0..{n_src - 1}, got {layers}"
        )
    emb = model.text_embed
    with torch.no_grad():
        word = state["embeddings.word_embeddings.weight"]
        if word.shape[0] > emb.word.weight.shape[0] or word.shape[1] != emb.word.weight.shape[1]:
            raise ConfigError(
                f"model.text_init: {path} has word embeddings {tuple(word.shape)}, "
                f"model has {tuple(emb.word.weight.shape)} (vocab_size / hidden)"
            )
        emb.word.weight[: word.shape[0]].copy_(word)
        pos = state["embeddings.position_embeddings.weight"]
        n = min(pos.shape[0], emb.position.weight.shape[0])
        emb.position.weight[:n].copy_(pos[:n])
        if emb.token_type is not None and "embeddings.token_type_embeddings.weight" in state:
            emb.token_type.weight.copy_(
                state["embeddings.token_type_embeddings.weight"][0].expand_as(emb.token_type.weight)
            )
        emb.norm.weight.copy_(state["embeddings.LayerNorm.weight"])
        emb.norm.bias.copy_(state["embeddings.LayerNorm.bias"])
        for ours, src in enumerate(layers):
            blk = model.cross.blocks[ours]
            for hf in BERT_SELF_LAYER:
                for p in ("weight", "bias"):
                    blk.get_parameter(f"{BERT_NAMES[hf]}.{p}").copy_(state[f"encoder.layer.{src}.{hf}.{p}"])


def num_parameters(model: nn.Module) -> int:
    """Unique parameters (the tied MLM decoder counts once)."""
    return sum(p.numel() for p in model.parameters())
