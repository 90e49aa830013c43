"""HiTeA video question answering (paper section 4.2) on TVQA-style records
(``{"qid", "q", "a0".."a{n-1}", "answer_idx", "ts", "vid_name"}``, read by ``read_tvqa``).

- ``hitea-mcqa``: multiple choice. Every candidate is scored by VTM with "question answer" as the text
  (score = matched minus not-matched logit); training is cross-entropy over a question's candidates,
  prediction the arg-max. A record with the wrong number of candidates (``data.num_answers``) or an
  answer index out of range is an ``InputError`` naming the file, line and qid.
- ``hitea-oeqa``: open-ended. The decoder generates the answer from the fused [video; question] (as
  PrefixLM in pre-training); training is teacher-forced cross-entropy on the answer tokens. The open-ended
  set is built from the TVQA-style records by taking the correct candidate's text as the target; the
  metric is exact-match accuracy after SQuAD-style normalisation.

With ``data.use_span`` the frames are sampled inside the question's ``ts`` span (widened to hold
``num_frames`` frames); without a span, over the whole video. Every ``ts`` must lie in its video
(``check_span``, with or without ``data.use_span``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tempovl.data.annotations import read_tvqa
from tempovl.data.packing import pad_ids
from tempovl.errors import ConfigError, InputError
from tempovl.io import write_jsonl
from tempovl.metrics.qa import exact_match_accuracy, qa_accuracy
from tempovl.models.text import lm_cross_entropy, target_positions
from tempovl.registry import register_task
from tempovl.tasks.base import ChoicePrediction, PredictRequest, TextPrediction
from tempovl.tasks.hitea.base import IMAGE_SUFFIXES, HiteaDownstreamTask, annotation_files, check_span


@dataclass
class HiteaMCQAConfig:
    """The ``task:`` section of ``hitea-mcqa``."""

    name: str = "hitea-mcqa"
    eval_batch_size: int = 8  # questions per evaluation batch


@dataclass
class HiteaOEQAConfig:
    """The ``task:`` section of ``hitea-oeqa``."""

    name: str = "hitea-oeqa"
    eval_batch_size: int = 8
    num_beams: int = 3
    answer_max_len: int = 16  # generated tokens at most
    max_question_len: int = 40  # tokens of the question, [CLS] and [SEP] included


def load_qa(task: HiteaDownstreamTask, split: str) -> list[dict]:
    """TVQA-style records of `split` with ``video_path`` added, their spans checked against the videos'
    durations; errors name the file and record."""
    cfg = task.data_cfg
    if cfg.format != "tvqa":
        raise ConfigError(f"data.format: QA tasks read 'tvqa' records, got {cfg.format!r}")
    records = []
    for path in annotation_files(cfg, split):
        for r in read_tvqa(path, num_answers=cfg.num_answers):
            where = f"{path} (qid={r['qid']!r})"
            if "answer_idx" not in r:
                raise InputError(f"{where}: no 'answer_idx' (QA needs the correct answer to train or score)")
            video = task.video_path(str(r["vid_name"]), where)
            if r["span"] is not None and not video.lower().endswith(IMAGE_SUFFIXES):
                check_span(r["span"], task.video_duration(video), where, video, "'ts'")
            records.append(dict(r, video_path=video))
    if not records:
        raise InputError(f"{cfg.corpus}: no QA records in {cfg.annotations.get(split)}")
    return records


class QADataset(Dataset):
    """Items: ``video`` (T, H, W, 3) uint8, ``question``, ``answers``, ``answer_idx``, ``qid``."""

    def __init__(self, task: HiteaDownstreamTask, records: list[dict], train: bool):
        self.task, self.records, self.train = task, records, train
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        span = r["span"] if self.task.data_cfg.use_span else None
        if self.train:
            video = self.task.sampler.sample(r["video_path"], i, True, span)
        else:  # evaluation frames are fixed: decode once
            if i not in self._cache:
                self._cache[i] = self.task.sampler.sample(r["video_path"], i, False, span)
            video = self._cache[i]
        return {
            "video": video,
            "question": r["q"],
            "answers": list(r["answers"]),
            "answer_idx": int(r["answer_idx"]),
            "qid": r["qid"],
        }


class _QATask(HiteaDownstreamTask):
    def __init__(self, cfg: dict, task_cls: type):
        super().__init__(cfg, task_cls)
        self._records: dict[str, list[dict]] = {}
        self._eval_sets: dict[str, QADataset] = {}

    def records(self, split: str) -> list[dict]:
        if split not in self._records:
            self._records[split] = load_qa(self, split)
        return self._records[split]

    def dataset(self, split: str, subtask: str = "main") -> Dataset:
        if split == "train":
            return QADataset(self, self.records(split), train=True)
        if split not in self._eval_sets:
            self._eval_sets[split] = QADataset(self, self.records(split), train=False)
        return self._eval_sets[split]

    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        return self.make_batch

    def _eval_batches(self, split: str):
        data = self.dataset(split)
        n = len(data)
        for s in range(0, n, self.c.eval_batch_size):
            yield self.make_batch([data[i] for i in range(s, min(n, s + self.c.eval_batch_size))])


@register_task("hitea-mcqa")
class HiteaMCQATask(_QATask):
    """Multiple-choice QA by the VTM score of every (video, question + candidate)."""

    losses = ("vtm",)

    def __init__(self, cfg: dict):
        super().__init__(cfg, HiteaMCQAConfig)

    def make_batch(self, items: list[dict]) -> dict:
        """``video`` (B, T, 3, H, W), ``text_ids``/``text_mask`` (B*C, L), ``labels`` (B,)."""
        texts = [f"{it['question']} {a}" for it in items for a in it["answers"]]
        ids, mask = pad_ids([self.tokenize(t) for t in texts], self.model.cfg.pad_id)
        return {
            "video": self.float_video([it["video"] for it in items]).cpu(),
            "text_ids": ids,
            "text_mask": mask,
            "labels": torch.as_tensor([it["answer_idx"] for it in items], dtype=torch.long),
            "num_answers": torch.as_tensor([len(it["answers"]) for it in items]),
        }

    def candidate_logits(
        self, video: torch.Tensor, text_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """video (B, T, 3, H, W), texts (B*C, L) -> candidate scores (B, C)."""
        b = video.shape[0]
        c = text_ids.shape[0] // b
        v = self.model.encode_video(video).repeat_interleave(c, dim=0)  # (B*C, 1+M, D)
        text = self.model.encode_text(text_ids, text_mask.bool())
        logits = self.model.vtm_logits(v, text, text_mask.bool())  # (B*C, 2)
        return (logits[:, 1] - logits[:, 0]).view(b, c)  # (B*C,) -> (B, C)

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        scores = self.candidate_logits(batch["video"], batch["text_ids"], batch["text_mask"])
        loss = F.cross_entropy(scores.float(), batch["labels"])
        acc = (scores.argmax(dim=1) == batch["labels"]).float().mean()
        return {"mcqa_loss": loss, "accuracy": acc.detach()}

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        was_training = self.training
        self.eval()
        preds, labels = [], []
        try:
            for batch in self._eval_batches(split):
                scores = self.candidate_logits(
                    batch["video"].to(self.device),
                    batch["text_ids"].to(self.device),
                    batch["text_mask"].to(self.device),
                )
                preds += scores.argmax(dim=1).tolist()
                labels += batch["labels"].tolist()
        finally:
            self.train(was_training)
        result = qa_accuracy(preds, labels, num_choices=self.data_cfg.num_answers)
        return {
            "accuracy": float(result["accuracy"]),
            "chance_accuracy": result["chance_accuracy"],
            "num_questions": float(result["n"]),
        }

    predict_needs = ("question", "answers")

    @torch.no_grad()
    def predict(self, request: PredictRequest) -> ChoicePrediction:
        """Pick the answer to the question among the candidates for a video file (or frames)."""
        question, answers = request.question, list(request.answers or ())
        if len(answers) < 2:
            raise ConfigError("predict: multiple-choice QA needs at least two --answers")
        self.eval()
        frames = self.frames_of(request.video)
        ids, mask = pad_ids([self.tokenize(f"{question} {a}") for a in answers], self.model.cfg.pad_id)
        scores = self.candidate_logits(self.float_video([frames]), ids.to(self.device), mask.to(self.device))[
            0
        ]
        probs = scores.float().softmax(dim=0).tolist()
        best = int(np.argmax(probs))
        return {"question": question, "answer_idx": best, "answer": answers[best], "probs": probs}


@register_task("hitea-oeqa")
class HiteaOEQATask(_QATask):
    """Open-ended QA: the decoder generates the answer; the target is the correct candidate's text."""

    losses = ("prefixlm",)

    def __init__(self, cfg: dict):
        super().__init__(cfg, HiteaOEQAConfig)
        if self.c.num_beams < 1 or self.c.answer_max_len < 1:
            raise ConfigError("task.num_beams and task.answer_max_len must be >= 1")

    def make_batch(self, items: list[dict]) -> dict:
        """``video``, ``question_ids``/``question_mask`` (B, Lq), ``answer_ids``/``answer_mask`` (B, La)."""
        pad = self.model.cfg.pad_id
        q_ids, q_mask = pad_ids([self.tokenize(it["question"], self.c.max_question_len) for it in items], pad)
        targets = [it["answers"][it["answer_idx"]] for it in items]
        a_ids, a_mask = pad_ids([self.tokenize(t, self.c.answer_max_len + 2) for t in targets], pad)
        return {
            "video": self.float_video([it["video"] for it in items]).cpu(),
            "question_ids": q_ids,
            "question_mask": q_mask,
            "answer_ids": a_ids,
            "answer_mask": a_mask,
            "targets": targets,
        }

    def encoder_states(self, video: torch.Tensor, q_ids: torch.Tensor, q_mask: torch.Tensor):
        """Fused [video; question] (B, Nv + Lq, D) and its mask, with gradients (training)."""
        q_mask = q_mask.bool()
        v = self.model.encode_video(video)
        video_out, text_out = self.model.fuse(v, self.model.encode_text(q_ids, q_mask), q_mask)
        v_mask = torch.ones(video_out.shape[:2], dtype=torch.bool, device=video_out.device)
        return torch.cat([video_out, text_out], 1), torch.cat([v_mask, q_mask], 1)

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        enc, enc_mask = self.encoder_states(batch["video"], batch["question_ids"], batch["question_mask"])
        ids, mask = batch["answer_ids"], batch["answer_mask"].bool()
        positions, labels = target_positions(ids[:, 1:].masked_fill(~mask[:, 1:], -100))
        logits = self.model.decoder(ids, mask, enc, enc_mask, positions=positions)  # (N, V) with a target
        return {"answer_loss": lm_cross_entropy(logits, labels)}

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids.tolist()]

    @torch.no_grad()
    def generate(self, video: torch.Tensor, q_ids: torch.Tensor, q_mask: torch.Tensor) -> list[str]:
        ids, _ = self.model.generate(
            video, q_ids, q_mask, max_len=self.c.answer_max_len, num_beams=self.c.num_beams
        )
        return self.decode(ids)

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        """Exact-match accuracy of the generated answers; `out_dir` also gets them as ``answers.jsonl``."""
        was_training = self.training
        self.eval()
        preds, refs, questions = [], [], []
        try:
            for batch in self._eval_batches(split):
                dev = {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                preds += self.generate(dev["video"], dev["question_ids"], dev["question_mask"])
                refs += batch["targets"]
                questions += self.decode(batch["question_ids"])
        finally:
            self.train(was_training)
        if out_dir is not None:
            qids = [r["qid"] for r in self.records(split)]
            write_jsonl(
                Path(out_dir) / "answers.jsonl",
                [
                    {"qid": i, "question": q, "answer": p, "reference": r}
                    for i, q, p, r in zip(qids, questions, preds, refs)
                ],
            )
        result = exact_match_accuracy(preds, refs)
        return {"accuracy": float(result["accuracy"]), "num_questions": float(len(refs))}

    predict_needs = ("question",)

    @torch.no_grad()
    def predict(self, request: PredictRequest) -> TextPrediction:
        """Generate the answer to the question about a video file (or frames); ``answers`` are ignored."""
        question = request.question
        self.eval()
        frames = self.frames_of(request.video)
        q_ids, q_mask = pad_ids([self.tokenize(question, self.c.max_question_len)], self.model.cfg.pad_id)
        answer = self.generate(self.float_video([frames]), q_ids.to(self.device), q_mask.to(self.device))[0]
        return {"question": question, "answer": answer}
