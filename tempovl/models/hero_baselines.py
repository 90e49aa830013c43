"""The two baselines of HERO's ablation (paper section 4.3), with Hero's inputs, outputs and heads.

* F-TRM (``hero-ftrm``): one flat transformer (``cross_layers + temporal_layers`` deep) over the
  sequence ``[all frames of the clip ; all subtitle tokens of the clip]``. Frames carry their clip
  position, tokens their position inside their sentence. ``frame_cross`` and ``frame_temporal`` are
  both the flat output at the frames; the Temporal Transformer is not built. QA / VIOLIN append their
  text to the same flat sequence (``encode_with_text``).
* H-TRM (``hero-htrm``): the cross-modal stack sees subtitle tokens only (a BERT/RoBERTa over each
  sentence); every frame's input to the Temporal Transformer is ``V_emb`` + the max-pooled output of its
  sentence. The cross-modal frame embedder is unused.

Both read the same :func:`tempovl.data.packing.pack_clips` batch, so tasks, losses and the converter
of text weights work unchanged.
"""

from __future__ import annotations

import torch

from tempovl.models.hero import Hero, HeroConfig, block_mask
from tempovl.registry import register_model


@register_model("hero-ftrm", HeroConfig)
class FlatTrm(Hero):
    """F-TRM: a single transformer over frames and all subtitle tokens of a clip."""

    def _cross_depth(self) -> int:
        return self.cfg.cross_layers + self.cfg.temporal_layers

    def _temporal_depth(self) -> int:
        return 0

    def _flat(
        self,
        batch: dict,
        frame_masked: torch.Tensor | None = None,
        frame_order: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
        extra_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The flat pass over ``[frames ; subtitle tokens ; extra]`` (``extra (B, Le, D)``: embedded text
        appended after the subtitles, QA / VIOLIN) -> (frame outputs (B, T, D), packed token outputs
        (R, L, D), packed token embeddings (R, L, D))."""
        frame_feats, frame_mask = batch["frame_feats"], batch["frame_mask"]
        b, t, f = frame_feats.shape
        masked = None if frame_masked is None else frame_masked.reshape(b * t)
        projected = self.frame_embed.project(frame_feats.reshape(b * t, f), masked).view(b, t, -1)
        pos = torch.arange(t, device=frame_feats.device)[None].expand(b, t)
        if frame_order is not None:  # FOM: the frame at t is presented at position frame_order[b, t]
            pos = frame_order
        frame_type = self._type(self.cfg.frame_type_id, frame_feats.device)
        frames = self.frame_embed(projected, pos.clamp(max=self.cfg.max_frame_positions - 1), frame_type)
        # every packed slot embedded as text, then the clip's token slots gathered into (B, Lt, D)
        pos_ids = batch["pack_position_ids"]
        slots = self.text_embed(
            batch["pack_token_ids"], pos_ids, torch.full_like(pos_ids, self.cfg.text_type_id)
        )
        r, l, d = slots.shape
        tok_idx = batch["clip_token_index"]  # (B, Lt)
        tokens = slots.reshape(r * l, d)[tok_idx.clamp(min=0)]  # (R*L, D) -> (B, Lt, D)
        parts, masks = [frames, tokens], [frame_mask, tok_idx >= 0]
        if extra is not None:
            parts.append(extra)
            masks.append(extra_mask)
        y = self.cross(torch.cat(parts, dim=1), torch.cat(masks, dim=1))  # (B, T + Lt [+ Le], D)
        frame_out, token_out = y[:, :t], y[:, t : t + tokens.shape[1]]
        if frame_order is not None:  # back to the shuffled layout that FOM's targets index
            frame_out = torch.zeros_like(frame_out).scatter(
                1, frame_order[..., None].expand_as(frame_out), frame_out
            )
        sel = tok_idx >= 0
        packed = slots.new_zeros(r * l, d).index_copy(0, tok_idx[sel], token_out[sel]).view(r, l, d)
        return frame_out, packed, slots

    def encode(
        self,
        batch: dict,
        frame_masked: torch.Tensor | None = None,
        frame_order: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        frame_out, packed, _ = self._flat(batch, frame_masked, frame_order)
        return {
            "frame_emb": self.frame_residual(batch["frame_feats"], frame_masked),
            "frame_cross": frame_out,
            "frame_fused": frame_out,
            "frame_temporal": frame_out,
            "frame_mask": batch["frame_mask"],
            "token_cross": packed,
            "token_mask": (batch["pack_frame_index"] < 0) & (batch["pack_group"] >= 0),
        }

    def encode_with_text(self, batch: dict, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """F-TRM for QA / VIOLIN: the text joins the one flat sequence, after the subtitles."""
        return self._flat(batch, extra=self.embed_text(text_ids), extra_mask=text_mask)[0]

    forward = encode


@register_model("hero-htrm", HeroConfig)
class HierarchicalTextTrm(Hero):
    """H-TRM: text-only sentence encoder; temporal input = V_emb + max-pooled sentence embedding."""

    def forward_cross(
        self, batch: dict, frame_feats: torch.Tensor, frame_masked: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pos = batch["pack_position_ids"]
        group = batch["pack_group"]
        is_token = (batch["pack_frame_index"] < 0) & (group >= 0)
        x = self.text_embed(batch["pack_token_ids"], pos, torch.full_like(pos, self.cfg.text_type_id))
        packed = self.cross(x, block_mask(group) & is_token[:, None, :])  # frames neither attend nor are seen
        d = packed.shape[-1]
        n_groups = batch["group_clip"].shape[0]
        sentence = packed.new_full((n_groups, d), torch.finfo(packed.dtype).min)
        src = packed[is_token]  # (N_tok, D)
        index = group[is_token][:, None].expand_as(src)
        sentence = sentence.scatter_reduce(0, index, src, "amax")  # (G, D) max-pool over each sentence
        has_tokens = torch.zeros(n_groups, dtype=torch.bool, device=packed.device)
        has_tokens[group[is_token]] = True
        sentence = torch.where(has_tokens[:, None], sentence, torch.zeros_like(sentence))
        frame_group = batch["frame_group"]  # (B, T)
        b, t, _ = frame_feats.shape
        frame_cross = sentence[frame_group[:, :t].clamp(min=0)] * (frame_group[:, :t] >= 0)[..., None]
        return frame_cross, packed  # (B, T, D), (R, L, D)
