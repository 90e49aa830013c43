"""HERO downstream retrieval (paper appendix A.3, A.6): video corpus moment retrieval and single-channel
retrieval, fine-tuned end to end with the VSM loss.

* ``hero-vcmr``: TVR / How2R moment queries (``read_tvr``) over multi-channel videos (subtitles from SRT
  files or ``tvr_subtitles.jsonl``). Evaluation: VR, SVMR and VCMR R@1/5/10/100 at tIoU 0.5 / 0.7 with
  the v / t / vt breakdown, computed by :func:`tempovl.metrics.eval_tvr` on the TVR standalone-evaluation
  JSON that is written next to the metrics (inference in :mod:`tempovl.tasks.hero.moments`).
* ``hero-didemo``: DiDeMo (``read_didemo``) on single-channel videos: an empty subtitle paired with the
  whole frame sequence (a video that has an SRT is used "w/ ASR"). Frame-level (moments) and clip-level
  (videos) scores as for TVR; the several-annotator rule both in the TVR evaluation (>= 4 annotator
  spans: 2 must agree) and in DiDeMo's own R@1 / R@5 / mIoU over its 21 candidate moments.
* ``hero-msrvtt``: MSR-VTT captions (``read_msrvtt``): clip-level scores only; text->video and
  video->text R@1/5/10 and median rank.

Training samples videos (so in-batch negatives are other videos): each item is a clip with
``task.queries_per_video`` of its queries (random, repeat-padded as the official code). The loss is
``λ1 (CE_st + CE_ed) + λ2 (hinge over negative videos + hinge over negative queries)`` (λ1 0.01, λ2 8,
margin 0.1). Options from the official TVR config: ``drop_local_prob`` (the local term is skipped on
that share of steps; official 0.8) and hard negatives from ``hard_negative_start`` training forward
passes on (the ``hard_pool_size`` hardest negatives weighted ``hard_neg_weight``, the rest 0.1).
``data.shuffle_frames`` permutes every video's frames at evaluation with a fixed seed (the temporal
shuffling test).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tempovl.data.annotations import read_didemo, read_msrvtt, read_tvr
from tempovl.data.hero_data import video_windows
from tempovl.data.packing import pad_ids
from tempovl.data.subtitles import Sentence
from tempovl.engine.distributed import get_world_size
from tempovl.errors import ConfigError, InputError
from tempovl.io import atomic_open, write_json, write_jsonl
from tempovl.metrics import DIDEMO_MOMENTS, didemo_eval, eval_tvr, rank_didemo_moments, retrieval_metrics
from tempovl.metrics.moment import tvr_table
from tempovl.objectives.matching import global_terms, hard_hinge, local_ce, vsm_global_scores
from tempovl.registry import register_task
from tempovl.tasks.base import MomentsPrediction, PredictRequest
from tempovl.tasks.hero import moments as hm
from tempovl.tasks.hero.base import HeroDownstreamTask
from tempovl.tasks.hero.pretrain import HeroPretrainTask
from tempovl.tasks.hero.retrieval_data import (
    Query,
    QueryVideos,
    RetrievalCollate,
    chunks,
    mode_span,
    video_batch,
)

log = logging.getLogger(__name__)


@dataclass
class HeroRetrievalConfig:
    name: str = "hero-vcmr"
    annotations: dict[str, str] = field(
        default_factory=lambda: {
            "train": "annotations/tvr_train.jsonl",
            "val": "annotations/tvr_val.jsonl",
            "test": "annotations/tvr_test.jsonl",
        }
    )  # split -> annotation file (relative to data.corpus, or absolute)
    queries_per_video: int = 5
    global_loss: str = "hinge"  # "hinge" (the paper) or "nce" (symmetric InfoNCE; see objectives.matching)
    margin: float = 0.1  # hinge margin
    temperature: float = 0.05  # nce temperature
    local_weight: float = 0.01  # λ1 (0 for clip-level tasks)
    global_weight: float = 8.0  # λ2
    drop_local_prob: float = 0.0  # official TVR: 0.8
    hard_negative: bool = False
    hard_negative_start: int = 2000  # training forward passes before hard negatives start
    hard_pool_size: int = 20
    hard_neg_weight: float = 10.0
    head_lr_mult: float = 1.0  # lr multiplier of the VSM heads (query encoder, projection, convs)
    q2c_alpha: float = 20.0  # video score = exp(alpha * cosine)
    max_vcmr_videos: int = 100
    min_span_frames: int = 2  # span-length window: min <= last - first < max (official 2 / 16)
    max_span_frames: int = 16
    nms_threshold: float | None = 0.5  # null = no NMS
    max_before_nms: int = 200
    max_after_nms: int = 100
    eval_batch_size: int = 16  # videos per encoding batch
    eval_query_batch: int = 8  # queries per span-scoring chunk
    plot_queries: int = 6


class HeroRetrievalTask(HeroDownstreamTask):
    """Shared HERO retrieval task; subclasses say how annotations read and what is evaluated."""

    kind = "moment"  # "moment" (frame + clip scores) or "clip" (clip scores only)
    captions_of_split_only = False  # True: drop the queries of videos outside the split (else an error)
    config_cls = HeroRetrievalConfig
    predict_needs = ("query",)

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        frozen = ["mlm_head", "mffr_head", "fom_head", "frame_mask_embedding", "frame_embed.mask_embedding"]
        if self.kind == "clip":
            frozen += ["vsm_query_proj", "vsm_start", "vsm_end"]
        for name in frozen:  # pre-training heads unused here: no gradient (and no DDP unused-parameter error)
            self.model.get_submodule(name).requires_grad_(False)
        if self.c.global_loss not in ("hinge", "nce"):
            raise ConfigError(f"task.global_loss: must be 'hinge' or 'nce', got {self.c.global_loss!r}")
        if self.c.queries_per_video < 1:
            raise ConfigError(f"task.queries_per_video: must be >= 1, got {self.c.queries_per_video}")
        if not 0 <= self.c.min_span_frames < self.c.max_span_frames:
            raise ConfigError(
                f"task.min_span_frames / max_span_frames: need 0 <= min < max, got "
                f"{self.c.min_span_frames} / {self.c.max_span_frames}"
            )
        self.register_buffer("train_forwards", torch.zeros((), dtype=torch.long))
        self._queries: dict[str, list[Query]] = {}

    # ------------------------------------------------------------------------------------- data
    def encode_text(self, text: str) -> list[int]:
        """``[CLS] + tokens`` (at most ``data.max_sentence_tokens``) of a query."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [self.specials.cls, *ids[: self.data_cfg.max_sentence_tokens]]

    @abc.abstractmethod
    def read_queries(self, path: Path) -> list[Query]:
        """The queries of one annotation file."""

    def queries(self, split: str) -> list[Query]:
        """The split's queries, checked against the split's videos."""
        if split not in self._queries:
            path = self.annotation_path(split)
            queries = self.read_queries(path)
            vids = set(self.clips(split).vids)
            if (
                self.captions_of_split_only
            ):  # e.g. the 9k training list: the file has the 10k videos' captions
                queries = [q for q in queries if q.vid in vids]
            missing = sorted({q.vid for q in queries if q.vid is not None and q.vid not in vids})
            if missing:
                raise InputError(
                    f"{path}: {len(missing)} video(s) named by queries are not in split {split!r} "
                    f"(data.splits.{split}) or have no features, e.g. {missing[:3]}"
                )
            if not queries:
                raise InputError(f"{path}: no queries")
            self._queries[split] = queries
        return self._queries[split]

    def dataset(self, split: str, subtask: str = "main") -> Dataset:
        queries = self.queries(split)
        if any(q.vid is None for q in queries):
            raise InputError(
                f"{self.annotation_path(split)}: unlabelled queries (no 'vid_name'/'ts') cannot train"
            )
        return QueryVideos(self.clips(split), queries, self.encode_text, self.interval)

    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        return RetrievalCollate(self.specials, self.model.cfg.pack_max_len, self.c.queries_per_video)

    def lr_multipliers(self) -> dict[str, float]:
        m = self.c.head_lr_mult
        heads = ("model.query_encoder", "model.vsm_query_proj", "model.vsm_start", "model.vsm_end")
        return {} if m == 1.0 else dict.fromkeys(heads, m)

    def export_module(self) -> torch.nn.Module:
        return self

    # ---------------------------------------------------------------------------------- forward
    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        c = self.c
        out = self.model.encode(batch)
        query = self.model.encode_query(batch["query_ids"], batch["query_mask"])  # (Nq, D)
        qv, frames, frame_mask = batch["query_video"], out["frame_temporal"], batch["frame_mask"]
        outputs: dict[str, torch.Tensor] = {}
        loss = query.new_zeros(())
        if self.kind == "moment" and c.local_weight > 0:
            start, end = self.model.vsm_local_logits(query, frames[qv], frame_mask[qv])  # (Nq, T) each
            local = local_ce(start, end, batch["span_targets"])
            keep = 1.0
            if self.training and c.drop_local_prob > 0:  # official drop_svmr_prob; graph kept for DDP
                keep = float(torch.rand(()) >= c.drop_local_prob)
            loss = loss + keep * c.local_weight * local
            outputs["vsm_local"] = local.detach()
        if self.training:
            self.train_forwards += 1
            if get_world_size() > 1:  # in-batch negatives from every rank
                query, frames, frame_mask, qv = HeroPretrainTask._gather(query, frames, frame_mask, qv)
        scores = vsm_global_scores(query, frames, frame_mask)  # (Nq, Nv)
        hard = c.hard_negative and self.training and int(self.train_forwards) > c.hard_negative_start
        neg_ctx, neg_q = global_terms(
            scores,
            qv,
            c.global_loss,
            c.margin,
            c.temperature,
            (c.hard_pool_size, c.hard_neg_weight) if hard else None,
        )
        loss = loss + c.global_weight * (neg_ctx + neg_q)
        outputs.update(vsm_neg_ctx=neg_ctx.detach(), vsm_neg_q=neg_q.detach())
        outputs["vsm_loss"] = loss
        outputs["vsm_acc"] = (scores.argmax(-1) == qv).float().mean()
        return outputs

    # --------------------------------------------------------------------------------- encoding
    @torch.no_grad()
    def encode_videos(self, items: Sequence[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Temporal outputs of clips: frames (Nv, T, D) zero-padded to the longest, mask (Nv, T)."""
        feats, masks = [], []
        for chunk in chunks(len(items), self.c.eval_batch_size):
            batch = self.to_device(
                video_batch([items[i] for i in chunk], self.specials, self.model.cfg.pack_max_len)
            )
            feats.extend(self.model.encode(batch)["frame_temporal"])
            masks.extend(batch["frame_mask"])
        t = max(f.shape[0] for f in feats)
        frames = torch.stack([F.pad(f, (0, 0, 0, t - f.shape[0])) for f in feats])  # (Nv, T, D)
        return frames, torch.stack([F.pad(m, (0, t - m.shape[0])) for m in masks])  # (Nv, T)

    @torch.no_grad()
    def encode_split(self, clips) -> tuple[torch.Tensor, torch.Tensor]:
        """Temporal outputs (Nv, T, D) and mask (Nv, T) of every video of a split, whole: a video longer
        than ``data.max_frames`` is encoded in overlapping windows (`encode_whole_video`, as `predict`
        and `search` encode it), so evaluation sees moments past the first window. With
        ``data.shuffle_frames`` the clips are the dataset's (the shuffling test reads the first window)."""
        items = [clips[i] for i in range(len(clips))]
        frames, masks = self.encode_videos(items)
        full = [clips.store.num_frames(v) for v in clips.vids]
        long = [i for i, n in enumerate(full) if n > self.data_cfg.max_frames]
        if not long or self.data_cfg.shuffle_frames:
            return frames, masks
        t = max(full)
        frames = F.pad(frames, (0, 0, 0, t - frames.shape[1]))  # (Nv, T, D)
        masks = F.pad(masks, (0, t - masks.shape[1]))  # (Nv, T)
        for i in long:
            feats, sentences = clips.whole_video(i)
            whole = self.encode_whole_video(feats, sentences, clips.store.interval, where=clips.vids[i])
            frames[i, : len(whole)], masks[i, : len(whole)] = whole, True
        return frames, masks

    @torch.no_grad()
    def encode_whole_video(
        self, feats: np.ndarray, sentences: Sequence[Sentence], interval: float, where: str = "video"
    ) -> torch.Tensor:
        """V_temp (T, D) of one video of any length from its features (T, F) at `interval` seconds and its
        subtitles: overlapping windows of ``data.max_frames`` frames every ``data.window_stride``
        (`video_windows`), each with the subtitles that overlap it (times shifted to the window),
        encoded as a training clip; each frame's row comes from the window whose centre is nearest.

        One merged timeline, not moments per window merged by NMS: moments are decoded once over the
        whole video (a moment across a window border is still one span), the index stores one row per
        frame, and `evaluate`, `predict` and `search` share this function."""
        feats = np.asarray(feats, dtype=np.float32)
        frame_dim = self.model.cfg.frame_dim
        if feats.ndim != 2 or feats.shape[1] != frame_dim or len(feats) == 0:
            raise InputError(
                f"{where}: features of shape {feats.shape}; the model expects (T >= 1, {frame_dim}) "
                f"from extractor {self.data_cfg.extractor!r}"
            )
        windows = video_windows(where, feats, sentences, self.data_cfg, interval, self.tokenize)
        frames, _ = self.encode_videos([clip for clip, _ in windows])  # (Nw, Tw, D)
        return torch.cat([frames[w, a:b] for w, (_, (a, b)) in enumerate(windows)])  # (T, D)

    @torch.no_grad()
    def encode_queries(self, texts: Sequence[str]) -> torch.Tensor:
        """Query vectors (N, D)."""
        out = []
        for chunk in chunks(len(texts), 64):
            ids, mask = pad_ids([self.encode_text(texts[i]) for i in chunk], self.specials.pad)
            out.append(self.model.encode_query(ids.to(self.device()), mask.to(self.device())))
        return torch.cat(out)

    @torch.no_grad()
    def global_scores(self, query: torch.Tensor, frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Max-pooled cosine (Nq, Nv), computed in query chunks."""
        return torch.cat([vsm_global_scores(query[r], frames, masks) for r in chunks(len(query), 64)])

    def span_probs_on(self, query: torch.Tensor, frames: torch.Tensor, masks: torch.Tensor):
        """Start/end probabilities (N, T) of query n on clip n."""
        start, end = self.model.vsm_local_logits(query, frames, masks)
        return hm.span_probs(start, end)

    # --------------------------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        """Metrics on `split`; with `out_dir`, also the prediction file, a markdown table and a plot."""
        was_training = self.training
        self.eval()
        clips, queries = self.clips(split), self.queries(split)
        frames, masks = self.encode_split(clips)
        query = self.encode_queries([q.text for q in queries])
        scores = self.global_scores(query, frames, masks)  # (Nq, Nv)
        if self.kind == "clip":
            metrics = self._clip_metrics(scores, clips, queries, out_dir)
        else:
            metrics = self._moment_metrics(query, frames, masks, scores, clips, queries, out_dir)
        self.train(was_training)
        return metrics

    def _clip_metrics(self, scores, clips, queries, out_dir) -> dict[str, float]:
        position = {v: i for i, v in enumerate(clips.vids)}
        res = retrieval_metrics(scores.cpu(), [position[q.vid] for q in queries], ks=(1, 5, 10))
        metrics = {f"{d}_{k}": float(v) for d, row in res.items() for k, v in row.items()}
        if out_dir is not None:
            top = scores.topk(min(10, scores.shape[1]), dim=1).indices.cpu().tolist()
            ranking = [
                {"id": q.qid, "video": q.vid, "top10": [clips.vids[i] for i in row]}
                for q, row in zip(queries, top)
            ]
            write_json(Path(out_dir) / "rankings.json", ranking)
        return metrics

    def _moment_metrics(self, query, frames, masks, scores, clips, queries, out_dir) -> dict[str, float]:
        c = self.c
        vids = clips.vids
        video2idx = {v: i for i, v in enumerate(vids)}
        video_scores = torch.exp(c.q2c_alpha * scores)
        k = min(c.max_vcmr_videos, len(vids))
        top_scores, top_idx = video_scores.topk(k, dim=1)  # (Nq, K)
        vcmr, svmr, vr, own_probs = [], [], [], []
        unlabelled = queries[0].vid is None  # all or none (read_queries)
        for r in chunks(len(queries), c.eval_query_batch):
            q = query[r]  # (c, D)
            n, d = q.shape
            cand = top_idx[r]  # (c, K)
            qq = q[:, None].expand(n, k, d).reshape(n * k, d)  # (c, K, D) -> (c*K, D)
            st, ed = self.span_probs_on(qq, frames[cand.reshape(-1)], masks[cand.reshape(-1)])
            st, ed = st.view(n, k, -1), ed.view(n, k, -1)  # (c*K, T) -> (c, K, T)
            sc, vk, si, ei = hm.top_spans(
                st, ed, c.min_span_frames, c.max_span_frames, c.max_before_nms, top_scores[r]
            )
            if unlabelled:  # no video of its own: VCMR and VR only
                for j, i in enumerate(r):
                    rows = [
                        [int(cand[j, v]), *hm.to_seconds(a, b, self.interval), s]
                        for s, v, a, b in zip(sc[j].tolist(), vk[j].tolist(), si[j].tolist(), ei[j].tolist())
                    ]
                    vcmr.append(hm.nms_vcmr(rows, c.nms_threshold, c.max_before_nms, c.max_after_nms))
                    vr.append(self._vr_rows(top_scores[i], top_idx[i]))
                continue
            own = torch.tensor([video2idx[queries[i].vid] for i in r], device=q.device)
            st_own, ed_own = self.span_probs_on(q, frames[own], masks[own])  # (c, T)
            own_probs.append((st_own.cpu().numpy(), ed_own.cpu().numpy()))
            osc, _, osi, oei = hm.top_spans(
                st_own[:, None], ed_own[:, None], c.min_span_frames, c.max_span_frames, c.max_before_nms
            )
            for j, i in enumerate(r):
                rows = []
                for s, v, a, b in zip(sc[j].tolist(), vk[j].tolist(), si[j].tolist(), ei[j].tolist()):
                    rows.append([int(cand[j, v]), *hm.to_seconds(a, b, self.interval), s])
                vcmr.append(hm.nms_vcmr(rows, c.nms_threshold, c.max_before_nms, c.max_after_nms))
                own_rows = [
                    [int(own[j]), *hm.to_seconds(a, b, self.interval), s]
                    for s, a, b in zip(osc[j].tolist(), osi[j].tolist(), oei[j].tolist())
                ]
                svmr.append(hm.nms_svmr(own_rows, c.nms_threshold, c.max_before_nms, c.max_after_nms))
                vr.append(self._vr_rows(top_scores[i], top_idx[i]))
        submission: dict[str, Any] = {"video2idx": video2idx}
        for name, rows in (("VCMR", vcmr), ("SVMR", svmr), ("VR", vr)):
            if rows or not unlabelled:
                submission[name] = [
                    {"desc_id": q.qid, "desc": q.text, "predictions": p} for q, p in zip(queries, rows)
                ]
        if unlabelled:  # nothing to score: the TVR leaderboard's submission file
            if out_dir is not None:
                write_json(Path(out_dir) / "submission.json", submission)
            return {"unlabelled_queries": float(len(queries))}
        ground_truth = [self._gt_record(q) for q in queries]
        res = eval_tvr(submission, ground_truth, iou_thds=(0.5, 0.7), topks=(1, 5, 10, 100))
        metrics = flatten_tvr(res)
        if any(q.segments for q in queries):
            metrics.update(self._didemo_metrics(queries, own_probs))
        if out_dir is not None:
            out = Path(out_dir)
            write_json(out / "predictions.json", submission)
            write_jsonl(out / "ground_truth.jsonl", ground_truth)
            with atomic_open(out / "tvr_metrics.md") as f:
                f.write(tvr_table(res) + "\n")
            self._plot(out / "moments.png", clips, queries, svmr, vcmr)
        return metrics

    @staticmethod
    def _vr_rows(scores: torch.Tensor, videos: torch.Tensor) -> list[list[float]]:
        """VR predictions [video, 0, 0, score] of one query's ranked videos (the first 100)."""
        return [[int(v), 0.0, 0.0, float(s)] for s, v in zip(scores[:100].tolist(), videos[:100].tolist())]

    def _gt_record(self, q: Query) -> dict:
        spans = q.spans if q.spans and len(q.spans) >= 4 else q.train_span
        rec = {"desc_id": q.qid, "desc": q.text, "vid_name": q.vid, "ts": spans}
        if q.qtype is not None:
            rec["type"] = q.qtype
        return rec

    def _didemo_metrics(self, queries: Sequence[Query], own_probs: list) -> dict[str, float]:
        st = np.concatenate([p[0] for p in own_probs])
        ed = np.concatenate([p[1] for p in own_probs])
        scores = hm.didemo_moment_scores(st, ed, self.interval, DIDEMO_MOMENTS)
        res = didemo_eval(rank_didemo_moments(scores), [q.segments for q in queries])
        return {f"didemo_{k}": float(v) for k, v in res.items()}

    def _plot(self, path: Path, clips, queries, svmr, vcmr) -> None:
        items = []
        for q, s_rows, v_rows in list(zip(queries, svmr, vcmr))[: self.c.plot_queries]:
            i = clips.vids.index(q.vid)
            duration = clips.num_frames[i] * self.interval
            right = bool(v_rows) and clips.vids[int(v_rows[0][0])] == q.vid
            items.append(
                {
                    "desc": f"{q.qtype + ': ' if q.qtype else ''}{q.text}",
                    "duration": duration,
                    "gt": q.spans or [q.train_span],
                    "preds": [r[1:4] for r in s_rows[:3]],
                    "note": f"{q.vid}; VCMR top-1 {'right' if right else 'wrong'} video",
                }
            )
        if items:
            hm.plot_moments(path, items, title=f"{self.c.name}: predicted (blue, top-3) vs true (green)")

    # ---------------------------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, request: PredictRequest) -> MomentsPrediction:
        """Rank the moments of one video for a text query (see ``tempovl/tasks/cli_predict.py``)."""
        query, top_k = request.query, request.top_k
        if request.question is not None:
            raise ConfigError(f"task {self.c.name!r} retrieves moments: give --query, not --question")
        if not query:
            raise ConfigError(f"task {self.c.name!r} needs a text query (--query)")
        interval = self.interval if request.interval is None else float(request.interval)
        was_training = self.training
        self.eval()
        # the whole video, in overlapping windows, as the search index encodes it
        frames = self.encode_whole_video(request.video, request.sentences, interval)[None]  # (1, T, D)
        masks = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)  # (1, T)
        q = self.encode_queries([query])
        score = float(self.global_scores(q, frames, masks)[0, 0])
        result: MomentsPrediction = {"video_score": score, "moments": []}
        if self.kind == "moment":
            c = self.c
            st, ed = self.span_probs_on(q, frames, masks)
            sc, _, si, ei = hm.top_spans(
                st[:, None], ed[:, None], c.min_span_frames, c.max_span_frames, c.max_before_nms
            )
            rows = [
                [0, *hm.to_seconds(a, b, interval), s]
                for s, a, b in zip(sc[0].tolist(), si[0].tolist(), ei[0].tolist())
            ]
            rows = hm.nms_svmr(rows, c.nms_threshold, c.max_before_nms, top_k)
            result["moments"] = [{"start": r[1], "end": r[2], "score": r[3]} for r in rows[:top_k]]
        self.train(was_training)
        return result


def flatten_tvr(res: dict) -> dict[str, float]:
    """eval_tvr's nested result -> flat ``VCMR_0.5-r1``, ``VR_r10``, ``VCMR_v-0.7-r1`` floats."""
    out = {}
    for task, row in res.items():
        prefix = task.replace("_by_type", "")
        for k, v in row.items():
            if k != "desc_type_ratio":
                out[f"{prefix}_{k}"] = float(v)
    return out


@register_task("hero-vcmr")
class HeroVcmrTask(HeroRetrievalTask):
    """TVR / How2R video corpus moment retrieval."""

    def read_queries(self, path: Path) -> list[Query]:
        out = []
        for r in read_tvr(path, self.video_durations()):
            if "vid_name" not in r and "ts" not in r:  # the public test release: queries only
                out.append(Query(r["desc_id"], r["desc"], None, qtype=r.get("type")))
                continue
            if "vid_name" not in r or "ts" not in r:
                raise InputError(
                    f"{path}: desc_id {r['desc_id']}: has one of 'vid_name' and 'ts' but not both"
                )
            out.append(Query(r["desc_id"], r["desc"], r["vid_name"], [r["ts"]], r["ts"], r.get("type")))
        if any(q.vid is None for q in out) and not all(q.vid is None for q in out):
            raise InputError(f"{path}: some queries have 'vid_name' and 'ts' and some do not")
        return out


@register_task("hero-didemo")
class HeroDidemoTask(HeroRetrievalTask):
    """DiDeMo moment retrieval on single-channel videos (empty subtitle unless an SRT exists)."""

    def read_queries(self, path: Path) -> list[Query]:
        out = []
        for r in read_didemo(path):
            vid = Path(r["video"]).stem if Path(r["video"]).suffix else r["video"]
            spans = [list(map(float, s)) for s in r["times_sec"]]
            out.append(
                Query(r["annotation_id"], r["description"], vid, spans, mode_span(spans), segments=r["times"])
            )
        return out


@register_task("hero-msrvtt")
class HeroMsrvttTask(HeroRetrievalTask):
    """MSR-VTT text-to-video retrieval: clip-level scores only ("w/ ASR" when the video has an SRT).
    A split's captions are those of its videos: the 9k training list (MSRVTT_train.9k.csv in
    data.splits) takes its captions from train_val_videodatainfo.json."""

    kind = "clip"
    captions_of_split_only = True

    def read_queries(self, path: Path) -> list[Query]:
        """The captions of `path`; "FILE#NAME" keeps the videos whose "split" is NAME (the release's
        train_val_videodatainfo.json#validate)."""
        file, _, only = str(path).partition("#")
        return [
            Query(r["sen_id"] if r.get("sen_id") is not None else i, r["caption"], r["video_id"])
            for i, r in enumerate(read_msrvtt(file, split=only or None))
        ]


__all__ = [
    "HeroDidemoTask",
    "HeroMsrvttTask",
    "HeroRetrievalTask",
    "HeroVcmrTask",
    "Query",
    "flatten_tvr",
    "hard_hinge",
    "video_batch",
]
