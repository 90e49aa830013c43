"""HERO fine-tuning for multiple-choice video QA (TVQA / How2QA) and video-language inference (VIOLIN).

HERO appendix A.3 and the official code (linjieli222/HERO ``model/videoQA.py``, ``model/violin.py``):

* Every candidate becomes its own copy of the clip. The text ``[SEP] question [SEP] answer`` (VIOLIN:
  ``[SEP] statement``) is appended to every subtitle group of the Cross-modal Transformer input (also
  to the empty-text groups of frames without subtitles) and to the Temporal Transformer input: the
  Temporal Transformer runs over ``[V_emb + V_cross (positions + LN) ; text embeddings]`` and its frame
  outputs are kept.
* Attention pooling over time (a ``d -> 1`` scoring vector, softmax over the clip's real frames), then an
  MLP gives one logit per candidate; softmax cross-entropy over the candidates (VIOLIN: one logit,
  binary cross-entropy).
* TVQA span loss: a second pooling, this one over the candidates at every frame (the official
  ``st_ed_pool``), and an MLP to start/end logits per frame; cross-entropy against the frame indices of
  the question's ``ts``, weighted by ``task.span_loss_weight`` (0.5 in the paper, 0.4 in the official
  ``train-tvqa-8gpu.json``). Questions without a span are ignored by it.
* New heads live under ``heads`` and get ``task.head_lr_mult`` (x10) times the learning rate.

Evaluation: accuracy (percent), and when ``annotations/meta.jsonl`` is there (the demo corpus), accuracy
on order-dependent and order-free questions separately; beside chance, ``text_only_accuracy`` (a naive
Bayes over the candidate texts fit on the train split) and the spread of the predictions
(``pred_majority``, ``prob_spread``), with a WARNING when they are constant (issue 12: the tiny presets
collapsed to one answer silently). ``task.train_limit`` trains on the first N items (overfitting checks).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tempovl.data.align import seconds_to_frames
from tempovl.data.annotations import read_tvqa, read_violin
from tempovl.data.hero_data import TextSpecials, moment_window, pad_frames
from tempovl.data.packing import pack_clips, pad_ids
from tempovl.errors import ConfigError, InputError
from tempovl.io import read_jsonl, write_json, write_jsonl
from tempovl.layers.pooling import MASK_VALUE, AttentionPool
from tempovl.metrics.qa import qa_accuracy
from tempovl.models.hero import GeluNormMLP
from tempovl.registry import register_task
from tempovl.tasks.base import ChoicePrediction, EntailmentPrediction, PredictRequest
from tempovl.tasks.hero.base import HeroDownstreamTask

CONSTANT_MAJORITY = 99.0  # percent of items with the same predicted class/index: a constant predictor
CONSTANT_SPREAD = 0.01  # prob_spread below this: the predictions do not depend on the input

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ shared base


def flat_accuracy(res: dict) -> dict[str, float]:
    """``qa_accuracy``'s result as the flat metrics a task returns: accuracy, chance, n, per order type."""
    out = {"accuracy": res["accuracy"], "chance_accuracy": res["chance_accuracy"], "n": float(res["n"])}
    for kind, r in res.get("per_type", {}).items():
        out[f"accuracy_{kind}"] = r["accuracy"]
        out[f"n_{kind}"] = float(r["n"])
    return out


def prediction_spread(probs: np.ndarray) -> dict[str, float]:
    """How far predictions are from constant: ``pred_majority``, the share (percent) of the most frequent
    predicted class (VIOLIN, probs (N,) = P(entailed)) or candidate index (QA, probs (N, K)), and
    ``prob_spread``, the std of P(entailed) over items or the mean over questions of max - min candidate
    probability."""
    if probs.ndim == 1:
        pred, spread = (probs > 0.5).astype(np.int64), float(probs.std())
    else:
        pred, spread = probs.argmax(-1), float((probs.max(-1) - probs.min(-1)).mean())
    return {"pred_majority": float(100.0 * np.bincount(pred).max() / len(pred)), "prob_spread": spread}


def warn_if_constant(task: str, step: int, spread: dict[str, float], n: int) -> bool:
    """Log a WARNING when the predictions of an evaluation look constant; returns whether it did."""
    same = spread["pred_majority"] >= CONSTANT_MAJORITY and n >= 20  # a few items may agree by chance
    flat = spread["prob_spread"] < CONSTANT_SPREAD
    if same or flat:
        log.warning(
            f"{task}, step {step}: the predictions are constant ({spread['pred_majority']:.1f} % of {n} "
            f"items predict the same, prob_spread {spread['prob_spread']:.4f}); the model ignores its "
            "input, so accuracy is chance or the class prior"
        )
    return same or flat


class TextOnlyBaseline:
    """Naive Bayes over the word pieces of the candidate texts, fit on the train split: the accuracy a
    model reaches from the question/answer or statement text alone (no frames, no subtitles).

    Each text is scored by the summed log-ratio of its tokens' frequencies in right vs wrong candidates
    (add-one smoothing); QA picks the best-scoring candidate, VIOLIN thresholds at the class prior."""

    def __init__(self, texts: Sequence[Sequence[int]], labels: Sequence[int]):
        right, wrong = Counter(), Counter()
        for t, y in zip(texts, labels):
            (right if y else wrong).update(t)
        n_right, n_wrong = sum(right.values()), sum(wrong.values())
        vocab = len(set(right) | set(wrong)) + 1
        self.weight = {
            tok: math.log((right[tok] + 1) / (n_right + vocab))
            - math.log((wrong[tok] + 1) / (n_wrong + vocab))
            for tok in set(right) | set(wrong)
        }
        pos = sum(1 for y in labels if y)
        self.prior = math.log((pos + 1) / (len(labels) - pos + 1))

    def score(self, text: Sequence[int]) -> float:
        return sum(self.weight.get(tok, 0.0) for tok in text)


def read_meta(corpus: str | Path, file_name: str) -> dict[str, dict]:
    """Demo-corpus provenance (``annotations/meta.jsonl``) of one annotation file: {str(id): record}.

    Empty when the corpus has no meta file (public datasets)."""
    path = Path(corpus) / "annotations" / "meta.jsonl"
    if not path.is_file():
        return {}
    return {str(r["id"]): r for r in read_jsonl(path) if r.get("file") == file_name}


def order_types(ids: Sequence, meta: dict[str, dict]) -> list[str] | None:
    """'order' / 'no_order' per item from the meta records; None unless every item has one."""
    if not meta or any(str(i) not in meta for i in ids):
        return None
    return ["order" if meta[str(i)].get("order") else "no_order" for i in ids]


# ------------------------------------------------------------------------------------------ batches


class TextClipCollate:
    """Batch of (video, K candidate texts) items: every candidate gets its own copy of the video, its
    text appended to every subtitle group. A video is one clip, or a long video's overlapping windows
    (`video_windows`): each (item, candidate, window) is one packed row, and ``merge_index`` /
    ``merge_mask`` (B*K, T) put the rows' kept frames back into video order (`merged_frames`).

    Item: ``{"id", "clip": {"vid", "frame_feats", "units"}`` or ``"windows": [(clip, (a, b)), ...]``,
    ``"texts": [K token lists], "target": int (-1 = unknown; or K ints, one per text: paired VIOLIN),
    "span": (st, ed) frame indices of the video or (-1, -1)}``."""

    def __init__(self, specials: TextSpecials, pack_max_len: int | None):
        self.sp, self.pack_max_len = specials, pack_max_len

    def __call__(self, items: list[dict]) -> dict:
        sp = self.sp
        k = len(items[0]["texts"])
        bad = [it["id"] for it in items if len(it["texts"]) != k]
        if bad:
            raise InputError(f"items {bad[:5]}: {k} candidates expected in every item of a batch")
        rows, groups, texts, keeps = [], [], [], []  # one per (item, candidate, window)
        sequences = []  # per (item, candidate): its rows
        for it in items:
            windows = it.get("windows") or [(it["clip"], (0, len(it["clip"]["frame_feats"])))]
            for text in it["texts"]:
                sequences.append(range(len(rows), len(rows) + len(windows)))
                for clip, keep in windows:
                    rows.append(clip)
                    groups.append([([sp.sep, *u.tokens, *text], u.frame_ids) for u in clip["units"]])
                    texts.append(text)
                    keeps.append(keep)
        frame_feats, frame_mask = pad_frames(rows)  # (R, Tw, F), (R, Tw)
        batch = pack_clips(groups, [len(c["frame_feats"]) for c in rows], self.pack_max_len, sp.pad)
        batch["text_ids"], batch["text_mask"] = pad_ids(texts, sp.pad)  # (R, Lt) each
        batch["frame_feats"], batch["frame_mask"] = frame_feats, frame_mask
        tw = frame_feats.shape[1]
        flat = [[r * tw + t for r in seq for t in range(*keeps[r])] for seq in sequences]
        batch["merge_index"], batch["merge_mask"] = pad_ids(flat, 0)  # (B*K, T) into the (R*Tw) rows
        batch["targets"] = torch.tensor([it["target"] for it in items], dtype=torch.long)  # (B,) or (B, K)
        batch["span_targets"] = torch.tensor([it["span"] for it in items], dtype=torch.long)  # (B, 2)
        batch["ids"] = [it["id"] for it in items]
        return batch


def merged_frames(h: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The (item, candidate) sequences (B*K, T, D) and their frame mask (B*K, T) from the rows' outputs
    (R, Tw, D): each window's kept frames, in video order (`TextClipCollate`)."""
    return h.flatten(0, 1)[batch["merge_index"]], batch["merge_mask"]


def item_video(clips, ci: int, span: tuple[int, int] | None = None) -> dict:
    """The video part of a QA/VIOLIN item for clip `ci` of `clips`: the clip when it fits one window;
    for a longer video the window around `span` (frames of the whole video; returned shifted into the
    window), or without a span the whole video in overlapping windows."""
    full = clips.store.num_frames(clips.vids[ci])
    if full <= clips.cfg.max_frames:
        return {"clip": clips[ci], "span": span or (-1, -1)}
    if span is None:
        return {"windows": clips.windows(ci), "span": (-1, -1)}
    lo, moment = moment_window(*span, full, clips.cfg)
    return {"clip": clips.window(ci, lo), "span": moment}


def span_frames(span: Sequence[float] | None, num_frames: int, interval: float) -> tuple[int, int]:
    """Start/end frame (inclusive) of a TVQA ``ts`` by :func:`tempovl.data.align.seconds_to_frames` (the
    official ``get_st_ed_label``); (-1, -1) when the question has no span."""
    if span is None:
        return -1, -1
    return seconds_to_frames(span[0], span[1], interval, num_frames)


# -------------------------------------------------------------------------------------------- TVQA


class AppendedTextTask(HeroDownstreamTask):
    """QA and VIOLIN: a text appended to every subtitle unit; subclasses set ``dataset_cls``."""

    dataset_cls: type = Dataset

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if self.c.train_limit is not None and self.c.train_limit < 1:
            raise ConfigError(f"task.train_limit: need a positive number or null, got {self.c.train_limit}")
        self._datasets: dict[str, Dataset] = {}
        self._train_batches = 0  # training forward passes, to name the step in warnings

    def dataset(self, split: str, subtask: str = "main") -> Dataset:
        """The items of `split`; ``task.train_limit`` keeps the first N of the train split."""
        if split not in self._datasets:
            data = self.dataset_cls(self, split)
            if split == "train" and self.c.train_limit is not None:
                data.items = data.items[: self.c.train_limit]
            self._datasets[split] = data
        return self._datasets[split]

    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        return TextClipCollate(self.specials, self.model.cfg.pack_max_len)

    def batch_probs(self, out: dict) -> np.ndarray:
        """The task's probabilities for one batch of outputs (rows = items)."""
        raise TypeError(f"{type(self).__name__} must define batch_probs")

    def text_only_predictions(self, split: str) -> tuple[list[int], list[int]] | None:
        """(predicted, true) labels of `split` from the candidate texts alone (``TextOnlyBaseline``)."""
        return None

    def steps_seen(self) -> int:
        """Optimisation steps so far, counted from the training forward passes of this process."""
        return self._train_batches // max(1, int(self.cfg.get("train", {}).get("grad_accum", 1)))

    def with_diagnostics(self, metrics: dict[str, float], probs: np.ndarray, split: str) -> dict[str, float]:
        """Evaluation `metrics` plus the spread of `probs` (a WARNING if they are constant) and the
        text-only baseline's accuracy beside chance (left out if the train split cannot be read)."""
        if len(probs):
            spread = prediction_spread(probs)
            warn_if_constant(f"{self.c.name} ({split})", self.steps_seen(), spread, len(probs))
            metrics.update(spread)
        try:
            text_only = self.text_only_predictions(split)
        except (InputError, ConfigError, OSError):  # e.g. no train annotations or features
            text_only = None
        if text_only is not None and text_only[1]:
            pred, truth = text_only
            metrics["text_only_accuracy"] = float(100.0 * np.mean(np.equal(pred, truth)))
        return metrics

    @torch.no_grad()
    def predict_batches(self, data: Dataset | Sequence[dict]) -> tuple[list, np.ndarray]:
        """(ids, probabilities) of every item of `data`, in eval mode (see ``batch_probs``)."""
        was_training = self.training
        self.eval()
        collate = self.collate()
        ids, probs = [], []
        try:
            for s in range(0, len(data), self.c.eval_batch_size):
                batch = collate([data[i] for i in range(s, min(s + self.c.eval_batch_size, len(data)))])
                batch = self.to_device(batch)
                ids.extend(batch["ids"])
                probs.append(self.batch_probs(self.forward(batch)))
        finally:
            self.train(was_training)
        return ids, np.concatenate(probs) if probs else np.zeros(0)


@dataclass
class HeroQAConfig:
    """The ``task:`` section of ``hero-tvqa``."""

    name: str = "hero-tvqa"
    annotations: str | dict[str, str] = (
        "annotations/tvqa_{split}.jsonl"  # {split} filled in, or split -> file
    )
    num_answers: int = 5  # 5 for TVQA, 4 for How2QA
    max_question_tokens: int = 30
    max_answer_tokens: int = 20
    span_loss_weight: float = 0.5  # λ of the span loss: paper 0.5, official config 0.4
    head_lr_mult: float = 10.0
    eval_batch_size: int = 8
    train_limit: int | None = None  # train on the first N questions only (overfitting checks); None = all


def check_qa_record(r: dict, num_answers: int, where: str) -> None:
    """A QA record needs `num_answers` candidates and, when it has one, an answer index among them."""
    answers = r.get("answers")
    if not isinstance(answers, list) or len(answers) != num_answers:
        n = len(answers) if isinstance(answers, list) else 0
        raise InputError(f"{where}: expected {num_answers} candidate answers, got {n}")
    idx = r.get("answer_idx")
    if idx is not None and (isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < num_answers):
        raise InputError(f"{where}: answer_idx {idx!r} is not in range 0..{num_answers - 1}")


class QADataset(Dataset):
    """Questions of one split with their clips and tokenised candidates (see ``TextClipCollate``)."""

    def __init__(self, task: HeroQATask, split: str, records: list[dict] | None = None):
        c = task.c
        path = task.annotation_path(split)
        if records is None:
            records = read_tvqa(path, task.video_durations(), num_answers=c.num_answers)
        clips, index = task.clips(split), task.clip_index(split)
        self.items, self.clips = [], clips
        for r in records:
            where = f"{path} qid {r.get('qid')}"
            check_qa_record(r, c.num_answers, where)
            if r["vid_name"] not in index:
                raise InputError(f"{where}: video {r['vid_name']!r} is not in split {split!r} of the corpus")
            ci = index[r["vid_name"]]
            q = task.tokenize(r["q"])[: c.max_question_tokens]
            texts = [
                [task.specials.sep, *q, task.specials.sep, *task.tokenize(a)[: c.max_answer_tokens]]
                for a in r["answers"]
            ]
            span = span_frames(r.get("span"), clips.store.num_frames(r["vid_name"]), task.store.interval)
            target = r.get("answer_idx")
            self.items.append((r["qid"], ci, texts, -1 if target is None else int(target), span))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        qid, ci, texts, target, span = self.items[i]
        video = item_video(self.clips, ci, span if span[0] >= 0 else None)  # long videos: windows
        return {"id": qid, **video, "texts": texts, "target": target}


@register_task("hero-tvqa")
class HeroQATask(AppendedTextTask):
    """Multiple-choice video QA on HERO (module docstring)."""

    config_cls = HeroQAConfig
    dataset_cls = QADataset

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if self.c.num_answers < 2:
            raise ConfigError(f"task.num_answers: need at least 2 candidates, got {self.c.num_answers}")
        self.check_text_budget(self.c.max_question_tokens + self.c.max_answer_tokens + 2)
        d = self.model.cfg.hidden
        self.heads = nn.ModuleDict(
            {
                "qa_pool": AttentionPool(d),
                "qa_head": GeluNormMLP(d, 2 * d, 1, self.model.cfg.embed_ln_eps),
                "span_pool": AttentionPool(d),
                "span_head": GeluNormMLP(d, 2 * d, 2, self.model.cfg.embed_ln_eps),
            }
        )
        self.init_heads()

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        self._train_batches += int(self.training)
        targets, spans = batch["targets"], batch["span_targets"]
        b = targets.shape[0]
        rows = self.model.encode_with_text(batch, batch["text_ids"], batch["text_mask"])  # (R, Tw, D)
        h, frame_mask = merged_frames(rows, batch)  # (B*K, T, D), (B*K, T)
        n, t, d = h.shape
        k = n // b
        pooled = self.heads["qa_pool"](h, frame_mask, dim=1)  # (B*K, D)
        logits = self.heads["qa_head"](pooled).view(b, k)  # (B*K, 1) -> (B, K)
        h4, mask4 = h.view(b, k, t, d), frame_mask.view(b, k, t)  # (B*K, T, D) -> (B, K, T, D)
        per_frame = self.heads["span_pool"](h4, mask4, dim=1)  # pooled over candidates: (B, T, D)
        st_ed = self.heads["span_head"](per_frame)  # (B, T, 2)
        real = mask4[:, 0]  # (B, T)
        start = st_ed[..., 0].masked_fill(~real, MASK_VALUE)
        end = st_ed[..., 1].masked_fill(~real, MASK_VALUE)
        out = {"qa_logits": logits, "start_logits": start, "end_logits": end}
        known = targets >= 0
        if known.any():
            out["qa_loss"] = F.cross_entropy(logits[known], targets[known])
            out["acc"] = (logits[known].argmax(-1) == targets[known]).float().mean()
        else:
            out["qa_loss"] = logits.sum() * 0.0
        has_span = spans[:, 0] >= 0
        if has_span.any():
            span_ce = (
                F.cross_entropy(start[has_span], spans[has_span, 0])
                + F.cross_entropy(end[has_span], spans[has_span, 1])
            ) / 2
        else:  # a zero that still touches the span heads' graph
            span_ce = st_ed.sum() * 0.0
        out["span_ce"] = span_ce.detach()
        out["span_loss"] = self.c.span_loss_weight * span_ce
        return out

    def batch_probs(self, out: dict) -> np.ndarray:
        """Answer probabilities (B, K) from the outputs of one batch."""
        return out["qa_logits"].float().softmax(-1).cpu().numpy()

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        """Accuracy (percent) on `split`; per order-dependence when the corpus has meta.jsonl."""
        data = self.dataset(split)
        ids, probs = self.predict_batches(data)
        truth = [it[3] for it in data.items]
        scored = [i for i, t in enumerate(truth) if t >= 0]
        if out_dir is not None:  # every question's answer, labelled or not
            write_jsonl(
                Path(out_dir) / "answers.jsonl",
                [
                    {"qid": q, "answer_idx": int(p.argmax()), "probs": [float(x) for x in p]}
                    for q, p in zip(ids, probs)
                ],
            )
        if not scored:  # an unlabelled split (tvqa_test_public.jsonl): the leaderboard's {qid: answer}
            if out_dir is not None:
                write_json(
                    Path(out_dir) / "submission.json", {str(q): int(p.argmax()) for q, p in zip(ids, probs)}
                )
            return {"unlabelled_questions": float(len(ids))}
        scored_ids = [ids[i] for i in scored]
        types = order_types(scored_ids, read_meta(self.data_cfg.corpus, self.annotation_path(split).name))
        res = qa_accuracy(
            [int(probs[i].argmax()) for i in scored],
            [truth[i] for i in scored],
            num_choices=self.c.num_answers,
            question_types=types,
            ids=scored_ids,
        )
        return self.with_diagnostics(flat_accuracy(res), probs[scored], split)

    def text_only_predictions(self, split: str) -> tuple[list[int], list[int]] | None:
        """Predicted and true answer index of every scored question of `split` from the text alone."""
        scored = [it for it in self.dataset(split).items if it[3] >= 0]
        train = [it for it in self.dataset("train").items if it[3] >= 0]
        nb = TextOnlyBaseline(
            [t for it in train for t in it[2]], [int(k == it[3]) for it in train for k in range(len(it[2]))]
        )
        return [int(np.argmax([nb.score(t) for t in it[2]])) for it in scored], [it[3] for it in scored]

    predict_needs = ("question", "answers")

    @torch.no_grad()
    def predict(self, request: PredictRequest) -> ChoicePrediction:
        """Answer one question about one video: ``{"answer_idx", "probs": [K floats]}``."""
        question, answers = request.question, list(request.answers or ())
        if len(answers) < 2:
            raise InputError(f"QA: need at least 2 candidate answers, got {len(answers)}")
        c, sp = self.c, self.specials
        q = self.tokenize(question)[: c.max_question_tokens]
        texts = [[sp.sep, *q, sp.sep, *self.tokenize(a)[: c.max_answer_tokens]] for a in answers]
        item = {
            "id": "input",
            "windows": self.input_windows(request.video, request.sentences, request.interval),
            "texts": texts,
            "target": -1,
            "span": (-1, -1),
        }
        _, probs = self.predict_batches([item])
        return {"answer_idx": int(probs[0].argmax()), "probs": [float(p) for p in probs[0]]}


# ------------------------------------------------------------------------------------------ VIOLIN


@dataclass
class HeroViolinConfig:
    """The ``task:`` section of ``hero-violin``."""

    name: str = "hero-violin"
    annotations: str = "annotations/violin_annotation.json"  # one file; records carry their split
    # tempovl split -> the "split" value of the records (the release calls val "validate")
    split_names: dict[str, str] = field(default_factory=dict)
    max_statement_tokens: int = 40
    head_lr_mult: float = 10.0
    eval_batch_size: int = 16
    train_limit: int | None = None  # train on the first N statements only (overfitting checks); None = all
    # Official HERO (data/violin.py): a training item is a statement *and* its paired one (same clip,
    # opposite label), so every batch holds both sides of each pair. Without it the head can lower the
    # loss by learning the label prior from the text alone, and on the demo corpus it collapsed to one
    # class; with it, what separates the two statements must come from the clip.
    paired: bool = True


class ViolinDataset(Dataset):
    """Statements (real = 1, fake = 0) of one split with their clips. With ``paired`` (training), item i
    is statement i and its paired statement, ``target`` their two labels; ``statement(i)`` is always the
    single statement (evaluation)."""

    def __init__(self, task: HeroViolinTask, split: str):
        path = task.annotation_path(split)
        records = read_violin(path, task.video_durations(), split=task.c.split_names.get(split, split))
        clips, index = task.clips(split), task.clip_index(split)
        self.items, self.clips = [], clips
        self.paired = task.c.paired and split == "train"
        self.pair_text: dict[tuple[str, int], list[int]] = {}  # (pair id, label) -> statement tokens
        for r in records:
            rid = f"{r['clip_id']}:{r['pair_idx']}"
            if r["vid_name"] not in index:
                raise InputError(
                    f"{path} [{r['clip_id']!r}]: video {r['vid_name']!r} is not in split {split!r} of the corpus"
                )
            text = [task.specials.sep, *task.tokenize(r["statement"])[: task.c.max_statement_tokens]]
            self.items.append((f"{rid}:{r['label']}", rid, index[r["vid_name"]], text, int(r["label"])))
            self.pair_text[rid, int(r["label"])] = text

    def __len__(self) -> int:
        return len(self.items)

    def statement(self, i: int) -> dict:
        sid, _, ci, text, label = self.items[i]
        return {"id": sid, **item_video(self.clips, ci), "texts": [text], "target": label}

    def __getitem__(self, i: int) -> dict:
        item = self.statement(i)
        if self.paired:  # a statement without its pair is repeated, so every item has two texts
            _, rid, _, text, label = self.items[i]
            other = self.pair_text.get((rid, 1 - label))
            item["texts"] = [text, text if other is None else other]
            item["target"] = [label, label if other is None else 1 - label]
        return item


@register_task("hero-violin")
class HeroViolinTask(AppendedTextTask):
    """Video-language inference on HERO: is the statement entailed by the clip? (module docstring)"""

    config_cls = HeroViolinConfig
    dataset_cls = ViolinDataset

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.check_text_budget(self.c.max_statement_tokens + 1)
        d = self.model.cfg.hidden
        self.heads = nn.ModuleDict(
            {
                "violin_pool": AttentionPool(d),
                "violin_head": GeluNormMLP(d, 2 * d, 1, self.model.cfg.embed_ln_eps),
            }
        )
        self.init_heads()

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        self._train_batches += int(self.training)
        rows = self.model.encode_with_text(batch, batch["text_ids"], batch["text_mask"])  # (R, Tw, D)
        h, frame_mask = merged_frames(rows, batch)  # (B*K, T, D), (B*K, T)
        pooled = self.heads["violin_pool"](h, frame_mask, dim=1)  # (B*K, D)
        logits = self.heads["violin_head"](pooled).squeeze(-1)  # (B*K,): K = 2 for paired training items
        targets = batch["targets"].float().reshape(-1)  # (B,) or (B, 2) -> (B*K,)
        return {
            "violin_logits": logits,
            "violin_loss": F.binary_cross_entropy_with_logits(logits, targets),
            "acc": ((logits > 0).float() == targets).float().mean(),
        }

    def batch_probs(self, out: dict) -> np.ndarray:
        """P(entailed) (B,) from the outputs of one batch."""
        return torch.sigmoid(out["violin_logits"].float()).cpu().numpy()

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        """Accuracy (percent) over statements; per order-dependence of the pair when meta.jsonl is there."""
        data = self.dataset(split)
        ids, probs = self.predict_batches([data.statement(i) for i in range(len(data))])
        truth = [it[4] for it in data.items]
        pair_ids = [it[1] for it in data.items]
        types = order_types(pair_ids, read_meta(self.data_cfg.corpus, self.annotation_path(split).name))
        res = qa_accuracy([int(p > 0.5) for p in probs], truth, num_choices=2, question_types=types, ids=ids)
        return self.with_diagnostics(flat_accuracy(res), probs, split)

    def text_only_predictions(self, split: str) -> tuple[list[int], list[int]] | None:
        """Predicted and true label of every statement of `split` from the statement text alone."""
        train = self.dataset("train").items
        nb = TextOnlyBaseline([it[3] for it in train], [it[4] for it in train])
        items = self.dataset(split).items
        return [int(nb.score(it[3]) + nb.prior > 0) for it in items], [it[4] for it in items]

    @torch.no_grad()
    def predict(self, request: PredictRequest) -> EntailmentPrediction:
        """Is the statement (or the question) entailed by the video? ``{"label": 0|1, "prob": P(entailed)}``."""
        text = request.statement if request.statement is not None else request.question
        if not text:
            raise InputError("VIOLIN: pass a statement to check against the video")
        tokens = [self.specials.sep, *self.tokenize(text)[: self.c.max_statement_tokens]]
        item = {
            "id": "input",
            "windows": self.input_windows(request.video, request.sentences, request.interval),
            "texts": [tokens],
            "target": 0,
            "span": (-1, -1),
        }
        _, probs = self.predict_batches([item])
        return {"label": int(probs[0] > 0.5), "prob": float(probs[0])}
