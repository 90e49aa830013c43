"""HiTeA's pre-training losses, composed from the model's encoders and heads and ``tempovl/objectives``.

:func:`pretraining_losses` returns every loss that ``model.cfg.losses`` enables, by name: ``vtc_loss``
(momentum encoders + MoCo queues, paper 3.1), ``vtm_loss`` (hard negatives), ``mlm_loss`` (15 %,
80/10/10), ``prefixlm_loss`` (a random prefix, the rest decoded), and the two temporal tasks ``cme_loss``
(cross-modal moment exploration, 3.2) and ``mtre_loss`` (multi-modal temporal relation exploration, 3.3),
plus the scalars ``vtc_temp``, ``vtc_acc`` and ``cme_temp``. The pre-training task sums the losses; the
retrieval task uses the same function with VTC + VTM enabled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tempovl.data.masking import mask_tokens
from tempovl.models.hitea import Hitea
from tempovl.models.text import lm_cross_entropy, split_prefix, target_positions
from tempovl.objectives.temporal import cme_loss, cme_select
from tempovl.objectives.vtm import sample_hard_negatives, vtm_loss


def pretraining_losses(
    model: Hitea,
    video_long: torch.Tensor,
    text_ids: torch.Tensor,
    text_mask: torch.Tensor,
    video_short: torch.Tensor | None = None,
    pair_ids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Both views (B, T, 3, H, W), caption ids/mask (B, L) -> {"vtc_loss", ..., "mtre_loss", scalars}."""
    on = set(model.cfg.losses)
    text_mask = text_mask.bool()
    if ({"cme", "mtre"} & on) and video_short is None:
        raise ValueError("cme/mtre need the short view: pass video_short")
    out: dict[str, torch.Tensor] = {}
    v_long = model.encode_video(video_long)  # (B, 1+M, D)
    text = model.encode_text(text_ids, text_mask)  # (B, L, D)
    v_feat, t_feat = model.video_embed(v_long), model.text_embed(text, text_mask)

    vtc = (
        _vtc(model, video_long, text_ids, text_mask, v_feat, t_feat, pair_ids)
        if {"vtc", "vtm"} & on
        else None
    )
    if "vtc" in on:
        out["vtc_loss"], out["vtc_temp"] = vtc["vtc_loss"], vtc["vtc_temp"]
        # in-batch video -> text accuracy: the argmax text of each video is one of its positives
        hit = vtc["pos_mask"].gather(1, vtc["sim_v2t"].argmax(dim=1, keepdim=True))
        out["vtc_acc"] = hit.float().mean()
    fused_long = None
    if {"vtm", "mtre"} & on:
        fused_long = model.fuse(v_long, text, text_mask)  # the positive pair, reused by MTRE
    if "vtm" in on:
        out["vtm_loss"] = _vtm(model, v_long, text, text_mask, fused_long[1][:, 0], vtc)
    if "mlm" in on:
        out["mlm_loss"] = _mlm(model, v_long, text_ids, text_mask)
    if "prefixlm" in on:
        out["prefixlm_loss"] = _prefixlm(model, v_long, text_ids, text_mask)
    if {"cme", "mtre"} & on:
        v_short = model.encode_video(video_short)
        word_feats = text[:, 1:]  # (B, L-1, D): the words, without [CLS] and [SEP]
        word_mask = text_mask[:, 1:] & (text_ids[:, 1:] != model.cfg.sep_id)
        if "cme" in on:
            temp = model.cme_temp.clamp(0.001, 0.5)
            words = F.normalize(model.text_proj(word_feats), dim=-1)
            out["cme_loss"], index, selected = cme_loss(
                words, word_mask, model.video_embed(v_short), temp, model.cfg.cme_topk
            )
            out["cme_temp"] = temp.detach()
        else:
            words = model.text_proj(word_feats)
            index, selected = cme_select(
                words, word_mask, model.vision_proj(v_short[:, 0]), model.cfg.cme_topk
            )
        if "mtre" in on:
            picked = torch.gather(
                word_feats, 1, index[..., None].expand(-1, -1, word_feats.shape[-1])
            )  # (B, K, D)
            short_cls = model.fuse(v_short, picked, selected)[0][:, 0]
            out["mtre_loss"] = model.mtre(fused_long[0][:, 0], short_cls)
    return out


def _vtc(model: Hitea, video, text_ids, text_mask, v_feat, t_feat, pair_ids) -> dict[str, torch.Tensor]:
    """VTC against the momentum encoders' embeddings and the queues; a training call first moves the
    momentum copies (right after the previous step's update)."""
    v_m = t_m = None
    if model.cfg.momentum > 0:
        with torch.no_grad():
            if model.training:
                model.momentum_step()
            v_m = model.video_embed(model.encode_video(video, momentum=True), momentum=True)
            t_m = model.text_embed(
                model.encode_text(text_ids, text_mask, momentum=True), text_mask, momentum=True
            )
    return model.vtc(v_feat, t_feat, v_m, t_m, pair_ids)


def _vtm(model: Hitea, v_long, text, text_mask, pos_cls, vtc) -> torch.Tensor:
    neg_video, ok_v = sample_hard_negatives(vtc["sim_t2v"], vtc["pos_mask"].t())  # a video per text
    neg_text, ok_t = sample_hard_negatives(vtc["sim_v2t"], vtc["pos_mask"])  # a text per video
    # text i with video neg_video[i]; video i with text neg_text[i]
    videos = torch.cat([v_long[neg_video], v_long], dim=0)  # (2B, 1+M, D)
    texts = torch.cat([text, text[neg_text]], dim=0)
    masks = torch.cat([text_mask, text_mask[neg_text]], dim=0)
    neg_logits = model.vtm_head(model.fuse(videos, texts, masks)[1][:, 0])  # (2B, 2)
    return vtm_loss(model.vtm_head(pos_cls), neg_logits[torch.cat([ok_v, ok_t])])


def _mlm(model: Hitea, v_long, text_ids, text_mask) -> torch.Tensor:
    c = model.cfg
    special = torch.tensor([c.pad_id, c.cls_id, c.sep_id], device=text_ids.device)
    candidates = text_mask.bool() & ~torch.isin(text_ids, special)
    masked, labels = mask_tokens(text_ids, candidates, c.mask_id, (0, c.vocab_size), c.mlm_prob)
    _, text_out = model.fuse(v_long, model.encode_text(masked, text_mask), text_mask)
    chosen = labels != -100  # the vocabulary projection only where there is a target (about 15 %)
    logits = model.mlm_head(text_out[chosen], model.text_encoder.embeddings.word.weight)  # (N, V)
    return lm_cross_entropy(logits, labels[chosen])


def _prefixlm(model: Hitea, v_long, text_ids, text_mask) -> torch.Tensor:
    prefix, prefix_mask, target, target_mask = split_prefix(
        text_ids, text_mask, model.cfg.pad_id, model.cfg.cls_id
    )
    video_out, text_out = model.fuse(v_long, model.encode_text(prefix, prefix_mask), prefix_mask)
    enc = torch.cat([video_out, text_out], dim=1)  # (B, Nv + Lp, D)
    enc_mask = torch.cat(
        [torch.ones(video_out.shape[:2], dtype=torch.bool, device=enc.device), prefix_mask], 1
    )
    positions, labels = target_positions(target[:, 1:].masked_fill(~target_mask[:, 1:], -100))
    return lm_cross_entropy(model.decoder(target, target_mask, enc, enc_mask, positions=positions), labels)
