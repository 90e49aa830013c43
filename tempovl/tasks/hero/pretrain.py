"""HERO pre-training (paper section 3.2): MLM, MFM (MFFR and MNCE), VSM and FOM, one per mini-batch.

The task owns the model (``model.name``: ``hero`` or the baselines ``hero-ftrm`` / ``hero-htrm``), the
data (``tempovl.data.hero_data``) and the losses (``tempovl.objectives``). Default sampling ratios are
the official config's MLM 2 : MNCE 2 : FOM 1 : VSM 2; MFFR is available with ratio 0.

``evaluate("val")`` gives the held-out loss of every trained sub-task with a fixed masking / shuffling /
query seed (so numbers are comparable over training), and VSM retrieval on the split: each clip's query
sentences are held out of its subtitle input and ranked against every clip of the split by the global
(max-pooled cosine) score; R@1/5/10 (percent, ties counted against the query, by
``tempovl.metrics.retrieval``) next to the chance level 100 * K / number of clips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from tempovl.config import from_dict
from tempovl.data.hero_data import SUBTASKS, ClipWindows, HeroCollate
from tempovl.data.masking import IGNORE
from tempovl.engine.distributed import all_gather_with_grad, all_reduce_max, get_rank, get_world_size
from tempovl.errors import ConfigError
from tempovl.metrics.retrieval import chance_recall, ranks_from_scores, recall_metrics
from tempovl.models.hero import Hero
from tempovl.objectives.contrastive import MNCELoss
from tempovl.objectives.masked import MFFR_LOSSES, MFFRLoss, MLMLoss
from tempovl.objectives.matching import VSMLoss, vsm_global_scores
from tempovl.objectives.order import FOMLoss
from tempovl.registry import register_task
from tempovl.tasks.hero.base import HeroTask


@dataclass
class HeroPretrainConfig:
    name: str = "hero-pretrain"
    ratios: dict[str, float] = field(
        default_factory=lambda: {"mlm": 2.0, "mnce": 2.0, "fom": 1.0, "vsm": 2.0, "mffr": 0.0}
    )
    mask_prob: float = 0.15  # MLM tokens
    frame_mask_prob: float = 0.15  # MFM frames
    fom_prob: float = 0.15  # FOM frames shuffled
    query_per_video: int = 5  # VSM queries per clip
    vsm_global_loss: str = "hinge"  # "hinge" (the paper) or "nce" (symmetric InfoNCE; objectives.matching)
    vsm_margin: float = 0.1  # hinge margin
    vsm_temperature: float = 0.05  # nce temperature
    vsm_local_weight: float = 0.01  # λ1
    vsm_global_weight: float = 8.0  # λ2
    mnce_temperature: float = 1.0
    # MFFR loss: "mse" (default: squared error averaged over frames and dims, what this task has always
    # trained with, so earlier runs stay comparable; MFFR is off in the official ratios anyway) or "l2"
    # (the official HERO training loss: each masked frame's L2 distance, averaged over frames)
    mffr_loss: str = "mse"
    eval_batch_size: int = 8
    eval_seed: int = 0  # fixes masking, shuffling and query choice in evaluate()
    eval_retrieval: bool = True


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    """Near-equal chunks of at most `size` (so no VSM batch is left with a single clip)."""
    n = max(1, -(-len(indices) // size))
    return [list(c) for c in np.array_split(np.asarray(indices, dtype=np.int64), n) if len(c)]


@register_task("hero-pretrain")
class HeroPretrainTask(HeroTask):
    """HERO pre-training on a corpus of videos with subtitles (see the module docstring)."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.c = from_dict(HeroPretrainConfig, cfg.get("task"), "task")
        self._windows: dict[str, ClipWindows] = {}
        unknown = [k for k in self.c.ratios if k not in SUBTASKS]
        if unknown:
            raise ConfigError(f"task.ratios: unknown sub-task {unknown[0]!r}; known: {', '.join(SUBTASKS)}")
        # F-TRM overrides encode(): its token outputs need the whole flat pass, Hero's only the cross-modal one
        self.mlm_cross_only = type(self.model).encode is Hero.encode
        if self.c.mffr_loss not in MFFR_LOSSES:
            raise ConfigError(f"task.mffr_loss: {self.c.mffr_loss!r} is not one of {', '.join(MFFR_LOSSES)}")
        self.mlm_loss, self.mffr_loss, self.fom_loss = MLMLoss(), MFFRLoss(self.c.mffr_loss), FOMLoss()
        self.mnce_loss = MNCELoss(self.c.mnce_temperature)
        if self.c.vsm_global_loss not in ("hinge", "nce"):
            raise ConfigError(
                f"task.vsm_global_loss: must be 'hinge' or 'nce', got {self.c.vsm_global_loss!r}"
            )
        self.vsm_loss = VSMLoss(
            self.c.vsm_margin,
            self.c.vsm_local_weight,
            self.c.vsm_global_weight,
            self.c.vsm_global_loss,
            self.c.vsm_temperature,
        )

    # ------------------------------------------------------------------------------------- data
    def subtasks(self) -> dict[str, float]:
        return dict(self.c.ratios)

    def windows(self, split: str) -> ClipWindows:
        """The clips of `split`, long videos in windows side by side (`ClipWindows`), built once."""
        if split not in self._windows:
            self._windows[split] = ClipWindows(self.clips(split))
        return self._windows[split]

    def dataset(self, split: str, subtask: str = "mlm") -> Dataset:
        data = self.windows(split)
        return Subset(data, data.with_queries()) if subtask == "vsm" else data

    def collate(
        self, subtask: str = "mlm", generator: torch.Generator | None = None
    ) -> Callable[[list], dict]:
        c = self.c
        return HeroCollate(
            subtask,
            self.specials,
            self.model.cfg.pack_max_len,
            c.mask_prob,
            c.frame_mask_prob,
            c.fom_prob,
            c.query_per_video,
            generator,
        )

    def export_module(self) -> torch.nn.Module:
        return self.model

    # ---------------------------------------------------------------------------------- forward
    def forward(self, batch: dict, subtask: str = "mlm") -> dict[str, torch.Tensor]:
        steps = {"mlm": self._mlm, "mffr": self._mfm, "mnce": self._mfm, "fom": self._fom, "vsm": self._vsm}
        if subtask not in steps:
            raise ConfigError(f"unknown HERO sub-task {subtask!r}; known: {', '.join(SUBTASKS)}")
        return steps[subtask](batch, subtask)

    def _mlm(self, batch: dict, subtask: str) -> dict[str, torch.Tensor]:
        if self.mlm_cross_only:  # MLM reads the cross-modal output (official)
            _, token_cross = self.model.forward_cross(batch, batch["frame_feats"])
        else:
            token_cross = self.model.encode(batch)["token_cross"]
        labels = batch["mlm_labels"]
        logits = self.model.mlm_logits(token_cross, labels)  # (N, V)
        targets = labels[labels != IGNORE]
        acc = (logits.argmax(-1) == targets).float().mean()
        return {"mlm_loss": self.mlm_loss(logits, labels), "mlm_acc": acc}

    def _mfm(self, batch: dict, subtask: str) -> dict[str, torch.Tensor]:
        masked, feats, frame_mask = batch["frame_masked"], batch["frame_feats"], batch["frame_mask"]
        out = self.model.encode(batch, frame_masked=masked)
        pred = self.model.mffr_head(out["frame_temporal"])  # (B, T, F)
        if subtask == "mffr":
            return {"mffr_loss": self.mffr_loss(pred, feats, masked)}
        with (
            torch.no_grad()
        ):  # the positive (own feature) must outscore the other masked targets and negatives
            p = pred[masked].float()
            cand = torch.cat([feats[masked].float(), pred[frame_mask & ~masked].float()])  # (N + K, F)
            acc = ((p @ cand.t()).argmax(-1) == torch.arange(len(p), device=p.device)).float().mean()
        return {"mnce_loss": self.mnce_loss(pred, feats, masked, frame_mask), "mnce_acc": acc}

    def _fom(self, batch: dict, subtask: str) -> dict[str, torch.Tensor]:
        out = self.model.encode(batch, frame_order=batch["frame_order"])
        logits = self.model.fom_head(out["frame_temporal"])  # (B, T, max_clip_len)
        targets = batch["fom_targets"]
        chosen = targets != -1
        if not chosen.any():  # nothing shuffled in this batch: a zero loss that still touches the graph
            return {"fom_loss": logits.sum() * 0.0, "fom_acc": logits.new_zeros(())}
        acc = (logits[chosen].argmax(-1) == targets[chosen]).float().mean()
        return {"fom_loss": self.fom_loss(logits, targets), "fom_acc": acc}

    def _vsm(self, batch: dict, subtask: str) -> dict[str, torch.Tensor]:
        out = self.model.encode(batch)
        query = self.model.encode_query(batch["query_ids"], batch["query_mask"])  # (Nq, D)
        qv, frames, frame_mask = batch["query_video"], out["frame_temporal"], batch["frame_mask"]
        start, end = self.model.vsm_local_logits(query, frames[qv], frame_mask[qv])  # (Nq, T) each
        if self.training and get_world_size() > 1:  # in-batch negatives from every rank
            query, frames, frame_mask, qv = self._gather(query, frames, frame_mask, qv)
        scores = vsm_global_scores(query, frames, frame_mask)  # (Nq, Nv)
        p = self.vsm_loss.parts(start, end, batch["span_targets"], scores, qv)
        c = self.c
        loss = c.vsm_local_weight * p["local"] + c.vsm_global_weight * (p["neg_ctx"] + p["neg_q"])
        acc = (scores.argmax(-1) == qv).float().mean()
        return {
            "vsm_loss": loss,
            "vsm_local": p["local"].detach(),
            "vsm_neg_ctx": p["neg_ctx"].detach(),
            "vsm_neg_q": p["neg_q"].detach(),
            "vsm_acc": acc,
        }

    @staticmethod
    def _gather(
        query: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor, qv: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and clips of every rank (clips padded to the longest over ranks), with gradients."""
        b, t = frame_mask.shape
        t_all = int(all_reduce_max([float(t)])[0])
        frames = F.pad(frames, (0, 0, 0, t_all - t))  # (B, T_all, D)
        frame_mask = F.pad(frame_mask, (0, t_all - t))
        qv = qv + get_rank() * b
        return (
            all_gather_with_grad(query),
            all_gather_with_grad(frames),
            all_gather_with_grad(frame_mask.float()) > 0.5,
            all_gather_with_grad(qv),
        )

    # --------------------------------------------------------------------------------- evaluate
    def _batches(self, data: ClipWindows, indices: list[int], subtask: str):
        collate = self.collate(subtask, torch.Generator().manual_seed(self.c.eval_seed))
        for chunk in _chunks(indices, self.c.eval_batch_size):
            yield chunk, self.to_device(collate([data[i] for i in chunk]))

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        """Held-out loss per trained sub-task (fixed seed), their ratio-weighted mean ``loss``, and VSM
        retrieval R@1/5/10 with chance levels (percent, as every tempovl recall)."""
        was_training = self.training
        self.eval()
        data = self.windows(split)
        metrics: dict[str, float] = {}
        trained = {k: v for k, v in self.c.ratios.items() if v > 0}
        for sub in trained:
            indices = data.with_queries() if sub == "vsm" else list(range(len(data)))
            total, count = 0.0, 0
            for chunk, batch in self._batches(data, indices, sub):
                out = self.forward(batch, sub)
                total += float(out[f"{sub}_loss"]) * len(chunk)
                count += len(chunk)
                for k, v in out.items():
                    if k.endswith("_acc"):
                        metrics[k] = metrics.get(k, 0.0) + float(v) * len(chunk)
            metrics[f"{sub}_loss"] = total / max(count, 1)
            for k in [k for k in metrics if k.startswith(sub) and k.endswith("_acc")]:
                metrics[k] /= max(count, 1)
        weight = sum(trained.values())
        metrics["loss"] = sum(trained[s] * metrics[f"{s}_loss"] for s in trained) / weight
        if self.c.eval_retrieval:
            metrics.update(self.retrieval(split))
        self.train(was_training)
        return metrics

    @torch.no_grad()
    def retrieval(self, split: str = "val") -> dict[str, float]:
        """VSM retrieval: every held-out query sentence ranked against all clips of `split`."""
        data = self.windows(split)
        indices = data.with_queries()
        if len(indices) < 2:
            return {}
        clip_frames, clip_masks, queries, query_clip = [], [], [], []
        for chunk, batch in self._batches(data, indices, "vsm"):
            out = self.model.encode(batch)
            query = self.model.encode_query(batch["query_ids"], batch["query_mask"])
            first = ~batch["query_repeat"].cpu()  # drop the repeat-padding of queries
            qv = batch["query_video"].cpu()
            queries.append(query[first.to(query.device)])
            query_clip.append(qv[first] + len(clip_frames))
            for b in range(len(chunk)):
                clip_frames.append(out["frame_temporal"][b])
                clip_masks.append(batch["frame_mask"][b])
        t = max(f.shape[0] for f in clip_frames)
        frames = torch.stack([F.pad(f, (0, 0, 0, t - f.shape[0])) for f in clip_frames])  # (Nv, T, D)
        masks = torch.stack([F.pad(m, (0, t - m.shape[0])) for m in clip_masks])  # (Nv, T)
        scores = vsm_global_scores(torch.cat(queries), frames, masks).cpu()  # (Nq, Nv)
        target = torch.cat(query_clip).tolist()
        n_clips = scores.shape[1]
        ks = (1, 5, 10)
        recall = recall_metrics(ranks_from_scores(scores, target), ks)  # percent, pessimistic ties
        chance = chance_recall(target, n_clips, ks)
        out = {"vsm_queries": float(len(target)), "vsm_clips": float(n_clips)}
        for k in ks:
            out[f"vsm_r{k}"] = recall[f"R@{k}"]
            out[f"vsm_chance_r{k}"] = chance[f"R@{k}"]
        return out
