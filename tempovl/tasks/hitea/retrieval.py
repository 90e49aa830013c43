"""HiTeA text-to-video retrieval (paper section 4.2): VTC + VTM fine-tuning, dot-product ranking re-ranked
by VTM.

Annotation formats (``data.format``), every text paired with its video(s):

- ``captions``: caption pairs ``{"video", "caption"}`` (one text per caption);
- ``msrvtt``: MSR-VTT captions ``{"video_id", "caption"}`` (one text per caption);
- ``didemo``: DiDeMo paragraph-to-video: the descriptions of a video, ordered by their moments' start
  (median over annotators), concatenated into one text per video; every moment must start inside its
  video (:func:`check_didemo_times`);
- ``ssv2``: SSv2-Template: the text is the template ("[Something] spins then shrinks"); every video of a
  template is a positive of it. Evaluation queries are the distinct templates.

Training: one item per (text, video); texts of the same group (the video, or the template for
``ssv2``) are positives of each other in VTC, and VTM's hard negatives skip them. Inference: all videos
(texts) ranked by the VTC dot product, the top ``task.rerank_k`` (paper: 128) re-ranked by the VTM
score (matched minus not-matched logit). Metrics in both directions: R@1/5/10, their mean
(``*_mean_recall``), median and mean rank, with and without re-ranking (``*_dot_*``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tempovl.data.annotations import (
    DIDEMO_SEGMENT_SECONDS,
    DURATION_TOLERANCE,
    read_caption_pairs,
    read_didemo,
    read_msrvtt,
    read_ssv2_template,
)
from tempovl.data.packing import pad_ids
from tempovl.errors import ConfigError, InputError
from tempovl.metrics.retrieval import chance_recall, ranks_from_scores, recall_metrics
from tempovl.registry import register_task
from tempovl.tasks.base import MomentsPrediction, PredictRequest
from tempovl.tasks.hitea.base import HiteaDownstreamTask, annotation_files
from tempovl.tasks.hitea.losses import pretraining_losses


@dataclass
class HiteaRetrievalConfig:
    """The ``task:`` section."""

    name: str = "hitea-retrieval"
    rerank_k: int = 128  # top-k of the dot-product ranking re-ranked by VTM (0 = no re-ranking)
    eval_batch_size: int = 16
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])


def spread(emb: torch.Tensor) -> float:
    """Mean per-dimension standard deviation of unit-norm embeddings (N, E) across the gallery: near 0 when
    the encoder has collapsed to one output whatever the input (then every ranking is chance)."""
    return float(emb.float().std(dim=0).mean()) if len(emb) > 1 else 0.0


@dataclass
class RetrievalData:
    """Videos, texts and who matches whom. ``pairs`` are the training items (text index, video index)."""

    videos: list[str]
    texts: list[str]
    text_videos: list[list[int]]  # per text: its positive videos
    text_group: list[int]  # per text: the positive group (VTC pair id)
    pairs: list[tuple[int, int]]

    def video_texts(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.videos]
        for t, vids in enumerate(self.text_videos):
            for v in vids:
                out[v].append(t)
        return out


def check_didemo_times(times: list[list[int]], duration: float, where: str, video: str) -> None:
    """DiDeMo's moments are runs [s, e] of 5-second segments, and a video's last segment is cut short by
    its end, so a moment may end past the video but each of its segments must start inside it (with
    DURATION_TOLERANCE, as spans elsewhere); InputError naming the file, record and video otherwise.
    (``read_didemo`` has already checked s <= e.)"""
    for k, (s, e) in enumerate(times):
        start = e * DIDEMO_SEGMENT_SECONDS  # the moment's last segment
        if start > duration + DURATION_TOLERANCE:
            raise InputError(
                f"{where}: 'times'[{k}] {[s, e]} reaches segment {e}, which starts at {start:g} s, after "
                f"the end of video {video} ({duration:.2f} s)"
            )


def load_retrieval(task: HiteaDownstreamTask, split: str) -> RetrievalData:
    """Read the split's annotation files in ``data.format`` into :class:`RetrievalData`."""
    cfg = task.data_cfg
    fmt = cfg.format
    videos: list[str] = []
    vindex: dict[str, int] = {}

    def video(name: str, where: str) -> int:
        path = task.video_path(name, where)
        if path not in vindex:
            vindex[path] = len(videos)
            videos.append(path)
        return vindex[path]

    texts: list[tuple[str, int]] = []  # (text, video)
    for path in annotation_files(cfg, split):
        if fmt == "captions":
            for i, r in enumerate(read_caption_pairs(path, root=cfg.corpus)):
                caps = r["caption"] if isinstance(r["caption"], list) else [r["caption"]]
                texts += [(c, video(r["video"], f"{path} [{i}]")) for c in caps]
        elif fmt == "msrvtt":
            for r in read_msrvtt(path):
                texts.append((r["caption"], video(str(r["video_id"]), f"{path} (sen_id={r['sen_id']})")))
        elif fmt == "didemo":
            by_video: dict[int, list[tuple[float, int, str]]] = {}
            for r in read_didemo(path):
                where = f"{path} (annotation_id={r['annotation_id']})"
                v = video(r["video"], where)
                check_didemo_times(r["times"], task.video_duration(videos[v]), where, videos[v])
                start = float(np.median([t[0] for t in r["times"]]))
                by_video.setdefault(v, []).append((start, len(by_video.get(v, [])), r["description"]))
            for v, descs in by_video.items():
                texts.append((" ".join(d.strip() for _, _, d in sorted(descs)), v))
        elif fmt == "ssv2":
            for r in read_ssv2_template(path, root=cfg.corpus):
                texts.append((r["template"], video(str(r.get("video", r["id"])), f"{path} (id={r['id']})")))
        else:
            raise ConfigError(
                f"data.format: {fmt!r} is not a retrieval format (captions, msrvtt, didemo, ssv2)"
            )
    if not texts:
        raise InputError(f"{cfg.corpus}: no {fmt} texts in {cfg.annotations.get(split)}")
    if fmt == "ssv2":  # one query per template, positives = all its videos
        uniq: dict[str, int] = {}
        for t, _ in texts:
            uniq.setdefault(t, len(uniq))
        text_videos: list[list[int]] = [[] for _ in uniq]
        for t, v in texts:
            text_videos[uniq[t]].append(v)
        return RetrievalData(
            videos,
            list(uniq),
            text_videos,
            list(range(len(uniq))),
            [(uniq[t], v) for t, v in texts],
        )
    return RetrievalData(
        videos,
        [t for t, _ in texts],
        [[v] for _, v in texts],
        [v for _, v in texts],
        [(i, v) for i, (_, v) in enumerate(texts)],
    )


class RetrievalPairs(Dataset):
    """Training items: ``video`` (T, H, W, 3) uint8, ``text_ids``, ``pair_id`` (the positive group)."""

    def __init__(self, task: HiteaDownstreamTask, data: RetrievalData, train: bool):
        self.task, self.data, self.train = task, data, train

    def __len__(self) -> int:
        return len(self.data.pairs)

    def __getitem__(self, i: int) -> dict:
        t, v = self.data.pairs[i]
        return {
            "video": self.task.sampler.sample(self.data.videos[v], i, self.train),
            "text_ids": self.task.tokenize(self.data.texts[t]),
            "pair_id": self.data.text_group[t],
        }


def rerank_topk(
    sim: torch.Tensor, k: int, pair_scores: Callable[[int, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Orders (Q, N) of every row of `sim` (Q, N): descending dot product, with the first `k` re-ordered
    by ``pair_scores(row, candidates (k,)) -> (k,)`` (higher first). Ties keep the earlier order."""
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices  # (Q, N)
    k = min(k, sim.shape[1])
    if k <= 1:
        return order
    out = order.clone()
    for q in range(sim.shape[0]):
        top = order[q, :k]
        scores = pair_scores(q, top).float().cpu()
        out[q, :k] = top[torch.sort(scores, descending=True, stable=True).indices]
    return out


def ranks_of(order: torch.Tensor) -> torch.Tensor:
    """Orders (Q, N) -> scores (Q, N) = N - position, so that higher = ranked earlier."""
    q, n = order.shape
    scores = torch.empty(q, n)
    scores.scatter_(1, order.cpu(), torch.arange(n, 0, -1, dtype=torch.float).expand(q, n).contiguous())
    return scores


@register_task("hitea-retrieval")
class HiteaRetrievalTask(HiteaDownstreamTask):
    losses = ("vtc", "vtm")

    def __init__(self, cfg: dict):
        super().__init__(cfg, HiteaRetrievalConfig)
        if self.c.rerank_k < 0 or self.c.eval_batch_size < 1:
            raise ConfigError("task.rerank_k must be >= 0 and task.eval_batch_size >= 1")
        self._data: dict[str, RetrievalData] = {}

    def data(self, split: str) -> RetrievalData:
        if split not in self._data:
            self._data[split] = load_retrieval(self, split)
        return self._data[split]

    def dataset(self, split: str, subtask: str = "main") -> Dataset:
        return RetrievalPairs(self, self.data(split), train=split == "train")

    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        pad, normalize = self.model.cfg.pad_id, self.data_cfg.normalize

        def collate(items: list[dict]) -> dict:
            from tempovl.data.hitea_data import NORMALIZATION, to_float_video

            ids, mask = pad_ids([it["text_ids"] for it in items], pad)
            return {
                "video": to_float_video(
                    torch.stack([it["video"] for it in items]), *NORMALIZATION[normalize]
                ),
                "text_ids": ids,
                "text_mask": mask,
                "pair_ids": torch.as_tensor([it["pair_id"] for it in items], dtype=torch.long),
            }

        return collate

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        self.reset_stale_queue()
        return pretraining_losses(
            self.model, batch["video"], batch["text_ids"], batch["text_mask"], pair_ids=batch["pair_ids"]
        )

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode_videos(self, paths: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Video tokens (V, 1+M, D) and normalised embeddings (V, E) (evaluation sampling)."""
        feats = []
        for start in range(0, len(paths), self.c.eval_batch_size):
            frames = [
                self.sampler.sample(p, start + j, False)
                for j, p in enumerate(paths[start : start + self.c.eval_batch_size])
            ]
            feats.append(self.model.encode_video(self.float_video(frames)))
        tokens = torch.cat(feats)
        return tokens, self.model.video_embed(tokens)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text tokens (N, L, D), mask (N, L) and normalised embeddings (N, E)."""
        ids, mask = pad_ids([self.tokenize(t) for t in texts], self.model.cfg.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        feats = torch.cat(
            [self.model.encode_text(ids[s : s + 64], mask[s : s + 64]) for s in range(0, len(texts), 64)]
        )
        return feats, mask, self.model.text_embed(feats, mask)

    @torch.no_grad()
    def vtm_scores(
        self, video_tokens: torch.Tensor, text_feats: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """VTM score (matched minus not-matched logit) of aligned pairs: (P, 1+M, D), (P, L, D) -> (P,)."""
        out = []
        for s in range(0, len(video_tokens), self.c.eval_batch_size):
            e = s + self.c.eval_batch_size
            logits = self.model.vtm_logits(video_tokens[s:e], text_feats[s:e], text_mask[s:e])  # (b, 2)
            out.append(logits[:, 1] - logits[:, 0])
        return torch.cat(out)

    @torch.no_grad()
    def rank(self, data: RetrievalData, k: int | None = None) -> dict[str, torch.Tensor]:
        """Dot-product similarities (T, V) and the re-ranked orders of both directions."""
        k = self.c.rerank_k if k is None else k
        v_tokens, v_emb = self.encode_videos(data.videos)
        t_feats, t_mask, t_emb = self.encode_texts(data.texts)
        sim = (t_emb @ v_emb.t()).float().cpu()  # (T, V)

        def t2v(q: int, cand: torch.Tensor) -> torch.Tensor:
            n = len(cand)
            return self.vtm_scores(
                v_tokens[cand.to(self.device)],
                t_feats[q : q + 1].expand(n, -1, -1),
                t_mask[q : q + 1].expand(n, -1),
            )

        def v2t(q: int, cand: torch.Tensor) -> torch.Tensor:
            n, c = len(cand), cand.to(self.device)
            return self.vtm_scores(v_tokens[q : q + 1].expand(n, -1, -1), t_feats[c], t_mask[c])

        return {
            "sim": sim,
            "video_spread": spread(v_emb),
            "text_spread": spread(t_emb),
            "t2v_order": rerank_topk(sim, k, t2v),
            "v2t_order": rerank_topk(sim.t().contiguous(), k, v2t),
        }

    predict_needs = ("query",)

    @torch.no_grad()
    def predict(self, request: PredictRequest) -> MomentsPrediction:
        """How well one video (a file or frames) matches a text query: the re-ranker's VTM score (matched
        minus not-matched logit). HiTeA retrieves whole videos, so there are no moments."""
        self.eval()
        tokens = self.model.encode_video(self.float_video([self.frames_of(request.video)]))
        feats, mask, _ = self.encode_texts([request.query])
        return {"video_score": float(self.vtm_scores(tokens, feats, mask)[0]), "moments": []}

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        data = self.data(split)
        was_training = self.training
        self.eval()
        try:
            r = self.rank(data)
        finally:
            self.train(was_training)
        ks = self.c.ks
        video_texts = data.video_texts()
        has_text = [v for v in range(len(data.videos)) if video_texts[v]]
        out: dict[str, float] = {}
        sim = r["sim"]
        for tag, t2v_scores, v2t_scores in (
            ("", ranks_of(r["t2v_order"]), ranks_of(r["v2t_order"])),
            ("dot_", sim, sim.t()),
        ):
            for direction, scores, positives in (
                ("t2v", t2v_scores, data.text_videos),
                ("v2t", v2t_scores[has_text], [video_texts[v] for v in has_text]),
            ):
                m = recall_metrics(ranks_from_scores(scores, positives), ks)
                for key in [f"R@{k}" for k in ks] + ["mean_recall", "median_rank", "mean_rank"]:
                    out[f"{direction}_{tag}{key}"] = float(m[key])
                if not tag:  # what a random ranking scores on this gallery
                    for key, value in chance_recall(positives, scores.shape[1], ks).items():
                        out[f"{direction}_chance_{key}"] = value
        out["video_embed_spread"], out["text_embed_spread"] = r["video_spread"], r["text_spread"]
        out["num_texts"] = float(len(data.texts))
        out["num_videos"] = float(len(data.videos))
        return out
