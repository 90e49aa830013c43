"""HiTeA (Ye et al., 2022): video encoder, text encoder, multimodal encoder, text decoder, two temporal views.

Architecture (paper section 3 and appendix C.2; layout of the public ModelScope release)::

    video (B, T, 3, H, W) --video_encoder--> [v_cls, v_1..v_M] (B, 1+M, D)        (MViTv2-B or TimeSformer)
    text ids (B, L) ------text_encoder-----> [w_cls, w_1..w_N] (B, L, D)          (BERT layers 0..5)
    fusion(video, text) -> (video_out, text_out): BERT layers 6..11 with cross-attention text -> video
        (mPLUG's skip-connected fusion: every ``fusion_stride``-th layer is instead one self-attention
        over [video; text] whose video part is added back to the video tokens)
    decoder: causal BERT with cross-attention to [video_out; text_out] (PrefixLM, open-ended QA) or to
        the video alone (captioning); ``generate`` does greedy and beam search.

The model returns representations and never computes a loss: the six pre-training losses (VTC, VTM, MLM,
PrefixLM, CME, MTRE) are composed in :mod:`tempovl.tasks.hitea.losses` from its encoders and heads and
from ``tempovl/objectives``; ``HiteaConfig.losses`` switches them (Table 4). The heads and the VTC queues
stay here, so checkpoints keep their layout.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from tempovl.errors import ConfigError
from tempovl.layers import LMHead, TextEmbedding, TransformerBlock
from tempovl.layers.transformer import block_caches
from tempovl.models.text import SpecialTokens, beam_search, bert_key_to_ours, load_bert_state
from tempovl.objectives.temporal import MTREHead
from tempovl.objectives.vtc import VTCLoss, make_momentum_copy, momentum_update
from tempovl.registry import register_model

LOSSES = ("vtc", "vtm", "mlm", "prefixlm", "cme", "mtre")


@dataclass
class HiteaConfig:
    video_encoder: Literal["mvit", "timesformer"] = "mvit"
    video: dict[str, Any] = field(default_factory=dict)  # the backbone's own config (MViTConfig keys)
    vocab_size: int = 30522  # BERT uncased WordPiece
    hidden: int = 768
    num_heads: int = 12
    mlp_hidden: int = 3072
    text_layers: int = 6  # first half of the BERT stack
    fusion_layers: int = 6  # second half, with cross-attention to the video
    fusion_stride: int = 3  # a connected [video; text] self-attention layer every N fusion layers (0 = none)
    decoder_layers: int = 12
    max_positions: int = 512
    type_vocab_size: int = 2
    pad_id: int = 0
    cls_id: int = 101
    sep_id: int = 102
    mask_id: int = 103
    dropout: float = 0.1
    embed_dim: int = 256  # VTC / CME projection width
    temp: float = 0.07  # initial VTC temperature (learnable)
    queue_size: int = 65536  # MoCo queue length (0 = in-batch negatives only)
    momentum: float = 0.995  # momentum-encoder coefficient (0 = no momentum encoders)
    distill_alpha: float = 0.4  # momentum-distillation weight of the VTC targets (0 = hard targets)
    mlm_prob: float = 0.15
    cme_topk: int = 5
    cme_temp: float = 0.07  # initial CME temperature (learnable)
    mtre_proj_dim: int = 2048
    mtre_pred_dim: int = 512
    losses: list[str] = field(default_factory=lambda: list(LOSSES))
    # Contrastive embeddings from the [CLS] tokens (the paper, "cls") or the mean of the tokens ("mean").
    # A randomly initialised text [CLS] is nearly the same vector for every sentence, and a tiny model
    # trained from scratch on a small corpus has to learn its way out of that first; "mean" starts from
    # a sentence vector that already differs between sentences (see configs/model/hitea-tiny.yaml).
    video_pool: Literal["cls", "mean"] = "cls"
    text_pool: Literal["cls", "mean"] = "cls"
    text_init: str | None = None  # local Hugging Face BERT directory for the text side
    attn_impl: str = "auto"


def causal_mask(mask: torch.Tensor) -> torch.Tensor:
    """Key-padding mask (B, L) bool -> (B, L, L): position i attends to valid j <= i."""
    n = mask.shape[1]
    tril = torch.ones(n, n, dtype=torch.bool, device=mask.device).tril()
    return tril[None] & mask[:, None, :]


def _embeddings(cfg: HiteaConfig) -> TextEmbedding:
    """BERT's word + position + token-type embeddings (the text encoder's and the decoder's own copy)."""
    return TextEmbedding(
        cfg.vocab_size, cfg.hidden, cfg.max_positions, cfg.type_vocab_size, cfg.pad_id, dropout=cfg.dropout
    )


class TextEncoder(nn.Module):
    """BERT embeddings + the first ``layers`` post-LN blocks."""

    def __init__(self, cfg: HiteaConfig, layers: int):
        super().__init__()
        self.embeddings = _embeddings(cfg)
        self.blocks = nn.ModuleList(_block(cfg) for _ in range(layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids (B, L), mask (B, L) bool -> (B, L, D)."""
        x = self.embeddings(ids)
        for block in self.blocks:
            x = block(x, mask)
        return x


def _block(cfg: HiteaConfig, cross: bool = False) -> TransformerBlock:
    return TransformerBlock(
        cfg.hidden,
        cfg.num_heads,
        cfg.mlp_hidden,
        dropout=cfg.dropout,
        attn_dropout=cfg.dropout,
        cross_attention=cross,
        kv_dim=cfg.hidden if cross else None,
        attn_impl=cfg.attn_impl,
    )


class Fusion(nn.Module):
    """The multimodal encoder (appendix C.2, mPLUG's skip-connected fusion).

    Layer i is an asymmetric co-attention layer (text self-attention, text -> video cross-attention, FFN)
    unless ``stride > 0`` and ``i % stride == 0`` (i > 0): then it is a connected layer, one
    self-attention + FFN over [video; text], whose video part is added to the video tokens. The output
    carries both: (video_out (B, Nv, D), text_out (B, L, D)).
    """

    def __init__(self, cfg: HiteaConfig):
        super().__init__()
        self.connected = [
            cfg.fusion_stride > 0 and i > 0 and i % cfg.fusion_stride == 0 for i in range(cfg.fusion_layers)
        ]
        self.blocks = nn.ModuleList(_block(cfg, cross=not c) for c in self.connected)

    def forward(
        self, video: torch.Tensor, video_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        nv = video.shape[1]
        for block, connected in zip(self.blocks, self.connected):
            if connected:
                joint = block(
                    torch.cat([video, text], dim=1), torch.cat([video_mask, text_mask], dim=1)
                )  # (B, Nv+L, D)
                video, text = video + joint[:, :nv], joint[:, nv:]
            else:
                text = block(text, text_mask, kv=video, kv_mask=video_mask)
        return video, text


class TextDecoder(nn.Module):
    """Causal BERT with cross-attention in every layer; output weights tied to its word embeddings."""

    def __init__(self, cfg: HiteaConfig):
        super().__init__()
        self.embeddings = _embeddings(cfg)
        self.blocks = nn.ModuleList(_block(cfg, cross=True) for _ in range(cfg.decoder_layers))
        self.head = LMHead(cfg.hidden, cfg.vocab_size)

    def forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        enc: torch.Tensor,
        enc_mask: torch.Tensor,
        last_only: bool = False,
        cache: list[dict] | None = None,
        start: int = 0,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, L), mask (B, L) bool, enc (B, S, D), enc_mask (B, S) -> logits (B, L, V); the vocabulary
        projection only where it is needed: (B, V) of the last position with ``last_only`` (decoding), or
        (N, V) of the `positions` (B, L) bool that have a target (training; ``text.target_positions``).

        Decoding with a key/value ``cache`` (a list, empty at the first step): ``ids`` are the positions
        from ``start`` on (every row unpadded), the earlier ones are in the cache."""
        pos = torch.arange(start, start + ids.shape[1], device=ids.device)[None].expand_as(ids)
        x = self.embeddings(ids, pos)
        self_mask = causal_mask(mask) if start == 0 else None  # later steps: one new position sees all
        for block, block_cache in zip(self.blocks, block_caches(cache, len(self.blocks)), strict=True):
            x = block(x, self_mask, kv=enc, kv_mask=enc_mask, cache=block_cache)
        if positions is not None:
            x = x[positions]  # (N, D)
        elif last_only:
            x = x[:, -1]  # (B, D)
        return self.head(x, self.embeddings.word.weight)


def _bert_init(module: nn.Module) -> None:
    """BERT initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _default_video_encoder(kind: str, cfg: dict) -> nn.Module:
    for module in ("tempovl.models.mvit", "tempovl.models.timesformer"):
        try:
            build = importlib.import_module(module).build_video_encoder
        except (ImportError, AttributeError):
            continue
        return build(kind, cfg)
    raise ConfigError("model.video_encoder: no video backbone module provides build_video_encoder")


@register_model("hitea", HiteaConfig)
class Hitea(nn.Module):
    """HiTeA. ``video_encoder`` may be given directly (tests); otherwise it is built from the config."""

    def __init__(self, cfg: HiteaConfig, video_encoder: nn.Module | None = None):
        super().__init__()
        unknown = [n for n in cfg.losses if n not in LOSSES]
        if unknown:
            raise ConfigError(f"model.losses: unknown loss {unknown[0]!r}; known: {', '.join(LOSSES)}")
        for key in ("video_pool", "text_pool"):
            if getattr(cfg, key) not in ("cls", "mean"):
                raise ConfigError(f"model.{key}: must be 'cls' or 'mean', got {getattr(cfg, key)!r}")
        if cfg.hidden % cfg.num_heads:
            raise ConfigError(
                f"model.hidden: {cfg.hidden} is not divisible by model.num_heads {cfg.num_heads}"
            )
        self.cfg = cfg
        self.video_encoder = video_encoder or _default_video_encoder(cfg.video_encoder, dict(cfg.video))
        vdim = self.video_encoder.out_dim
        self.video_proj = (
            nn.Sequential(nn.Linear(vdim, cfg.hidden), nn.LayerNorm(cfg.hidden, eps=1e-12))
            if vdim != cfg.hidden
            else None
        )
        self.text_encoder = TextEncoder(cfg, cfg.text_layers)
        self.fusion = Fusion(cfg)
        self.decoder = TextDecoder(cfg)
        self.vision_proj = nn.Linear(cfg.hidden, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.hidden, cfg.embed_dim)
        self.vtm_head = nn.Linear(cfg.hidden, 2)
        self.mlm_head = LMHead(cfg.hidden, cfg.vocab_size)  # tied to the text encoder's word embeddings
        self.vtc = VTCLoss(
            cfg.embed_dim, cfg.queue_size, cfg.temp, cfg.distill_alpha if cfg.momentum > 0 else 0.0
        )
        self.cme_temp = nn.Parameter(torch.tensor(float(cfg.cme_temp)))
        self.mtre = MTREHead(cfg.hidden, cfg.mtre_proj_dim, cfg.mtre_pred_dim)
        for name, module in self.named_children():  # BERT's init everywhere but the video backbone
            if name != "video_encoder":
                module.apply(_bert_init)
        if cfg.text_init:
            self.load_text_init(cfg.text_init)
        self.momentum_names = ["video_encoder", "video_proj", "text_encoder", "vision_proj", "text_proj"]
        if cfg.momentum > 0:  # momentum copies for VTC: buffers, not parameters (see objectives.vtc)
            for name in self.momentum_names:
                online = getattr(self, name)
                setattr(self, f"{name}_m", None if online is None else make_momentum_copy(online))

    # ------------------------------------------------------------------ encoders
    def encode_video(self, video: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """video (B, T, 3, H, W) normalised -> [v_cls, v_1..v_M] (B, 1+M, hidden)."""
        sfx = "_m" if momentum else ""
        feats = getattr(self, "video_encoder" + sfx)(video)
        proj = getattr(self, "video_proj" + sfx)
        return feats if proj is None else proj(feats)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """ids (B, L), mask (B, L) bool -> [w_cls, w_1..w_N] (B, L, hidden)."""
        return (self.text_encoder_m if momentum else self.text_encoder)(ids, mask)

    def fuse(
        self,
        video: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        video_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Multimodal encoder: video (B, Nv, D), text (B, L, D) -> (video_out, text_out)."""
        if video_mask is None:
            video_mask = torch.ones(video.shape[:2], dtype=torch.bool, device=video.device)
        return self.fusion(video, video_mask, text, text_mask)

    def video_embed(self, video_feats: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """Normalised contrastive video embedding from v_cls (or the mean of the patch tokens with
        ``video_pool: mean``): (B, 1+M, D) -> (B, E)."""
        pooled = video_feats[:, 1:].mean(1) if self.cfg.video_pool == "mean" else video_feats[:, 0]
        return F.normalize((self.vision_proj_m if momentum else self.vision_proj)(pooled), dim=-1)

    def text_embed(
        self, text_feats: torch.Tensor, text_mask: torch.Tensor, momentum: bool = False
    ) -> torch.Tensor:
        """Normalised contrastive text embedding from w_cls (or the mean of the valid tokens with
        ``text_pool: mean``): (B, L, D), mask (B, L) bool -> (B, E)."""
        if self.cfg.text_pool == "mean":
            w = text_mask.to(text_feats.dtype)[..., None]
            pooled = (text_feats * w).sum(1) / w.sum(1).clamp(min=1)
        else:
            pooled = text_feats[:, 0]
        return F.normalize((self.text_proj_m if momentum else self.text_proj)(pooled), dim=-1)

    def vtm_logits(
        self, video_feats: torch.Tensor, text_feats: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """Matching logits (B, 2) (index 1 = matched) from the fused text [CLS]."""
        return self.vtm_head(self.fuse(video_feats, text_feats, text_mask)[1][:, 0])

    # ------------------------------------------------------------------ momentum encoders
    @torch.no_grad()
    def momentum_step(self) -> None:
        """Move every momentum copy towards its online module (coefficient ``cfg.momentum``)."""
        for name in self.momentum_names:
            if getattr(self, name) is not None:
                momentum_update(getattr(self, name), getattr(self, f"{name}_m"), self.cfg.momentum)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def encoder_states(
        self,
        video: torch.Tensor,
        question_ids: torch.Tensor | None = None,
        question_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the decoder attends to: the video alone (captioning) or fused [video; question] (QA)."""
        v = self.encode_video(video)
        v_mask = torch.ones(v.shape[:2], dtype=torch.bool, device=v.device)
        if question_ids is None:
            return v, v_mask
        q_mask = question_mask.bool()
        video_out, text_out = self.fuse(v, self.encode_text(question_ids, q_mask), q_mask)
        return torch.cat([video_out, text_out], 1), torch.cat([v_mask, q_mask], 1)

    @torch.no_grad()
    def generate(
        self,
        video: torch.Tensor,
        question_ids: torch.Tensor | None = None,
        question_mask: torch.Tensor | None = None,
        prompt_ids: list[int] | None = None,
        max_len: int = 40,
        min_len: int = 1,
        num_beams: int = 1,
        length_penalty: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy (num_beams=1) or beam search. Returns (ids (B, <= len(prompt)+max_len) without [CLS] or
        [SEP], right-padded with pad_id; log-probability scores (B,) (length-normalised for beams))."""
        enc, enc_mask = self.encoder_states(video, question_ids, question_mask)
        c = self.cfg

        def step(
            ids: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor, cache: list | None, start: int
        ):
            mask = torch.ones_like(ids, dtype=torch.bool)
            return self.decoder(ids, mask, enc, enc_mask, last_only=True, cache=cache, start=start)

        tokens = SpecialTokens(bos=c.cls_id, eos=c.sep_id, pad=c.pad_id)
        return beam_search(
            step, enc, enc_mask, tokens, prompt_ids or [], max_len, min_len, num_beams, length_penalty
        )

    # ------------------------------------------------------------------ initialisation
    def load_text_init(self, path: str | Path) -> None:
        """Text encoder <- BERT layers [0, text_layers), fusion self-attention/FFN <- the next
        fusion_layers, decoder <- BERT embeddings and layers [0, decoder_layers) (mPLUG inits its decoder
        from BERT too). Cross-attention stays randomly initialised."""
        state = load_bert_state(path)
        c = self.cfg
        plan = {"embeddings": ["text_encoder.embeddings", "decoder.embeddings"]}
        n_bert = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
        if c.text_layers + c.fusion_layers > n_bert:
            raise ConfigError(
                f"model.text_init: {path} has {n_bert} layers, fewer than text_layers + fusion_layers = "
                f"{c.text_layers + c.fusion_layers}"
            )
        for i in range(c.text_layers):
            plan[f"encoder.layer.{i}"] = [f"text_encoder.blocks.{i}"]
        for j in range(c.fusion_layers):
            plan[f"encoder.layer.{c.text_layers + j}"] = [f"fusion.blocks.{j}"]
        for j in range(min(c.decoder_layers, n_bert)):
            plan.setdefault(f"encoder.layer.{j}", []).append(f"decoder.blocks.{j}")
        own = self.state_dict()
        loaded = {}
        for src, value in state.items():
            for src_prefix, dsts in plan.items():
                if src.startswith(src_prefix + "."):
                    for dst in dsts:
                        name = dst + "." + bert_key_to_ours(src[len(src_prefix) + 1 :])
                        if name not in own:
                            continue
                        if own[name].shape != value.shape:
                            raise ConfigError(
                                f"model.text_init: {path}: {src} has shape {tuple(value.shape)}, "
                                f"{name} has {tuple(own[name].shape)} (hidden/vocab must match the checkpoint)"
                            )
                        loaded[name] = value
        self.load_state_dict(loaded, strict=False)
