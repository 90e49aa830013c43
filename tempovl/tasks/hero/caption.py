"""HERO fine-tuning for video captioning (TVC; HERO appendix A.3, official ``model/tvc.py``).

The whole clip is encoded by HERO (subtitles included); the Temporal Transformer outputs of the frames
inside the moment (``[floor(st / interval), max(round(ed / interval), st + 1))``, the official
``get_st_ed_label``) are the memory of a 2-layer Transformer decoder with cross-attention (hidden, heads
and MLP width of the model). Caption tokens are embedded with HERO's word embeddings (shared) plus the
decoder's own positions and LayerNorm, and the output projection is HERO's MLM head (tied to the word
embeddings, as the official ``lm_head``). Trained end to end with token cross-entropy (label smoothing
``task.label_smoothing``, 0.1 in the official config); decoding is greedy (``beam_size: 1``) or beam
search, by the decoder HiTeA uses too (:func:`tempovl.models.text.beam_search`). The new decoder gets ``task.head_lr_mult`` (official ``lr_mul`` 10) times the learning rate.

``evaluate(split)`` writes the predictions (``[{"clip_id", "vid_name", "ts", "descs": [{"desc"}]}]``,
the TVC record layout) to ``{train.output_dir}/predictions/tvc_{split}.json`` and returns BLEU-4,
METEOR, ROUGE-L and CIDEr-D from :func:`tempovl.metrics.caption_scores` (coco-caption fractions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tempovl.data.align import seconds_to_frames
from tempovl.data.annotations import read_tvc
from tempovl.data.hero_data import TextSpecials, moment_window, pad_frames, window_clip
from tempovl.data.packing import pack_clips, pad_ids
from tempovl.errors import ConfigError, InputError
from tempovl.io import write_json
from tempovl.layers.transformer import Transformer
from tempovl.metrics.caption import CAPTION_METRICS, caption_scores
from tempovl.models.hero import HeroConfig
from tempovl.models.text import SpecialTokens, beam_search
from tempovl.registry import register_task
from tempovl.tasks.base import PredictRequest, TextPrediction
from tempovl.tasks.hero.qa import HeroDownstreamTask

IGNORE = -100


@dataclass
class HeroCaptionConfig:
    """The ``task:`` section of ``hero-tvc``."""

    name: str = "hero-tvc"
    annotations: str | dict[str, str] = "annotations/tvc_{split}.jsonl"  # {split} filled in, or split -> file
    decoder_layers: int = 2
    max_caption_tokens: int = 30  # training captions are cut to this many tokens (+ [SEP])
    max_gen_len: int = 30  # decoding steps (official max_gen_step)
    label_smoothing: float = 0.1  # official lsr
    beam_size: int = 1  # 1 = greedy
    length_penalty: float = 0.0  # beam score = log-prob / length ** length_penalty
    head_lr_mult: float = 10.0  # official lr_mul
    eval_batch_size: int = 16
    eval_max_clips: int | None = None  # caption only the first N clips of a split (quick evaluations)
    metrics: list[str] = field(default_factory=lambda: list(CAPTION_METRICS))
    predictions_dir: str | None = None  # default {train.output_dir}/predictions


def moment_frames(ts: Sequence[float], num_frames: int, interval: float) -> tuple[int, int]:
    """Frames [st, ed) (end exclusive) of a moment in seconds, kept inside the clip: the official TVC rule
    (end frame by rounding, at least one frame) of :func:`tempovl.data.align.seconds_to_frames`."""
    st, last = seconds_to_frames(ts[0], ts[1], interval, num_frames, min_frames=1, end_rule="nearest")
    return st, last + 1


class CaptionDecoder(nn.Module):
    """Positions + LayerNorm over the (shared) word embeddings, then causal self-attention and
    cross-attention to the moment's frames in every layer."""

    def __init__(self, m: HeroConfig, layers: int, max_len: int):
        super().__init__()
        self.position = nn.Embedding(max_len, m.hidden)
        self.norm = nn.LayerNorm(m.hidden, eps=m.embed_ln_eps)
        self.drop = nn.Dropout(m.dropout)
        self.blocks = Transformer(
            layers,
            m.hidden,
            m.num_heads,
            mlp_hidden=m.mlp_hidden,
            dropout=m.dropout,
            attn_dropout=m.attn_dropout,
            ln_eps=m.layer_ln_eps,
            cross_attention=True,
            attn_impl=m.attn_impl,
        )

    def forward(
        self,
        word_emb: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        cache: list[dict] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """word_emb (B, L, D), memory (B, M, D), memory_mask (B, M) bool -> (B, L, D). With a decoding
        ``cache``, word_emb holds the positions from ``start`` on and the cache the earlier ones."""
        b, n, _ = word_emb.shape
        pos = self.position(torch.arange(start, start + n, device=word_emb.device))[None]
        x = self.drop(self.norm(word_emb + pos))
        causal = None  # later decoding steps: the one new position sees every cached one
        if start == 0:
            causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()[None].expand(b, n, n)
        return self.blocks(x, causal, kv=memory, kv_mask=memory_mask, cache=cache)


class TVCDataset(Dataset):
    """TVC moments of one split. Training items are (moment, caption) pairs; evaluation items are moments
    with all their reference captions."""

    def __init__(self, task: HeroCaptionTask, split: str, train: bool):
        path = task.annotation_path(split)
        clips, index = task.clips(split), task.clip_index(split)
        self.clips, self.items = clips, []
        for r in read_tvc(path, task.video_durations()):
            if r["vid_name"] not in index:
                raise InputError(
                    f"{path} clip_id {r['clip_id']}: video {r['vid_name']!r} is not in split {split!r} of the corpus"
                )
            ci = index[r["vid_name"]]
            # the moment in the whole video, then the window of data.max_frames around it (long videos)
            full = clips.store.num_frames(r["vid_name"])
            lo, moment = moment_window(*moment_frames(r["ts"], full, task.store.interval), full, clips.cfg)
            refs = [d["desc"] for d in r.get("descs", [])]
            meta = {"clip_id": r["clip_id"], "vid_name": r["vid_name"], "ts": r["ts"], "refs": refs}
            if train:
                for ref in refs:
                    tokens = task.tokenize(ref)[: task.c.max_caption_tokens]
                    self.items.append((ci, lo, moment, tokens, meta))
            else:
                self.items.append((ci, lo, moment, [], meta))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        ci, lo, moment, tokens, meta = self.items[i]
        return {"clip": self.clips.window(ci, lo), "moment": moment, "tokens": tokens, "meta": meta}


class CaptionCollate:
    """Packed clips, moments (B, 2) and teacher-forcing inputs ``[CLS] + caption`` / targets
    ``caption + [SEP]`` (``IGNORE`` at padding)."""

    def __init__(self, specials: TextSpecials, pack_max_len: int | None):
        self.sp, self.pack_max_len = specials, pack_max_len

    def __call__(self, items: list[dict]) -> dict:
        sp = self.sp
        clips = [it["clip"] for it in items]
        frame_feats, frame_mask = pad_frames(clips)
        groups = [[([sp.sep, *u.tokens], u.frame_ids) for u in c["units"]] for c in clips]
        batch = pack_clips(groups, [len(c["frame_feats"]) for c in clips], self.pack_max_len, sp.pad)
        batch["frame_feats"], batch["frame_mask"] = frame_feats, frame_mask
        batch["moments"] = torch.tensor([it["moment"] for it in items], dtype=torch.long)  # (B, 2)
        inputs, _ = pad_ids([[sp.cls, *it["tokens"]] for it in items], sp.pad)  # (B, L)
        targets, _ = pad_ids([[*it["tokens"], sp.sep] for it in items], IGNORE)  # (B, L)
        batch["caption_ids"], batch["caption_targets"] = inputs, targets
        batch["meta"] = [it["meta"] for it in items]
        return batch


@register_task("hero-tvc")
class HeroCaptionTask(HeroDownstreamTask):
    """Moment captioning on HERO (module docstring)."""

    config_cls = HeroCaptionConfig

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        c = self.c
        unknown = [m for m in c.metrics if m not in CAPTION_METRICS]
        if unknown:
            raise ConfigError(f"task.metrics: unknown {unknown}; choose from {list(CAPTION_METRICS)}")
        for key in ("decoder_layers", "max_caption_tokens", "max_gen_len", "beam_size", "eval_batch_size"):
            if getattr(c, key) < 1:
                raise ConfigError(f"task.{key}: must be >= 1, got {getattr(c, key)}")
        if not 0.0 <= c.label_smoothing < 1.0:
            raise ConfigError(f"task.label_smoothing: must be in [0, 1), got {c.label_smoothing}")
        max_len = max(c.max_caption_tokens, c.max_gen_len) + 1
        self.heads = nn.ModuleDict({"decoder": CaptionDecoder(self.model.cfg, c.decoder_layers, max_len)})
        self.init_heads()
        self._data: dict[tuple[str, bool], TVCDataset] = {}

    def dataset(self, split: str, subtask: str = "main", train: bool | None = None) -> TVCDataset:
        train = split == "train" if train is None else train
        if (split, train) not in self._data:
            self._data[(split, train)] = TVCDataset(self, split, train)
        return self._data[(split, train)]

    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        return CaptionCollate(self.specials, self.model.cfg.pack_max_len)

    # -- model ---------------------------------------------------------------------------------------
    def encode_moments(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """HERO over the whole clips, then the frames of each moment: memory (B, M, D), mask (B, M)."""
        frames = self.model.encode(batch)["frame_temporal"]  # (B, T, D)
        moments = batch["moments"]
        length = moments[:, 1] - moments[:, 0]
        m = int(length.max())
        offs = torch.arange(m, device=frames.device)
        idx = (moments[:, :1] + offs[None]).clamp(max=frames.shape[1] - 1)  # (B, M)
        memory = frames.gather(1, idx[..., None].expand(-1, -1, frames.shape[-1]))
        return memory, offs[None] < length[:, None]

    def decode_logits(
        self,
        ids: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        last_only: bool = False,
        cache: list[dict] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """Next-token logits (B, L, V) for caption prefixes ids (B, L); (B, V) at the last position alone
        with ``last_only`` (decoding: the vocabulary projection only where needed); ``cache`` / ``start``
        as :meth:`CaptionDecoder.forward`."""
        word = self.model.text_embed.word
        h = self.heads["decoder"](word(ids), memory, memory_mask, cache, start)
        return self.model.mlm_head(h[:, -1] if last_only else h, word.weight)

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        memory, memory_mask = self.encode_moments(batch)
        logits = self.decode_logits(batch["caption_ids"], memory, memory_mask)  # (B, L, V)
        targets = batch["caption_targets"]
        loss = F.cross_entropy(
            logits.flatten(0, 1),
            targets.flatten(),
            ignore_index=IGNORE,
            label_smoothing=self.c.label_smoothing,
        )
        real = targets != IGNORE
        acc = (logits.argmax(-1)[real] == targets[real]).float().mean()
        return {"caption_loss": loss, "token_acc": acc}

    # -- decoding ------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, max_len: int, beam_size: int
    ) -> list[list[int]]:
        """Token ids (without [CLS] / [SEP]) per moment, by the shared decoder
        (:func:`tempovl.models.text.beam_search`; greedy at beam 1): a hypothesis ends at [SEP], its score
        is log-probability / length ** ``task.length_penalty``."""
        sp = self.specials

        def step(
            ids: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor, cache: list | None, start: int
        ):
            return self.decode_logits(ids, enc, enc_mask, last_only=True, cache=cache, start=start)

        tokens = SpecialTokens(bos=sp.cls, eos=sp.sep, pad=sp.pad)
        ids, _ = beam_search(
            step, memory, memory_mask, tokens, [], max_len, 1, beam_size, self.c.length_penalty
        )
        return [[i for i in row if i != sp.pad] for row in ids.tolist()]

    @torch.no_grad()
    def generate(self, batch: dict, beam_size: int | None = None) -> list[str]:
        """Captions (strings) for the moments of a batch, in eval mode."""
        beam_size = self.c.beam_size if beam_size is None else beam_size
        was_training = self.training
        self.eval()
        try:
            memory, memory_mask = self.encode_moments(batch)
            seqs = self.decode(memory, memory_mask, self.c.max_gen_len, beam_size)
        finally:
            self.train(was_training)
        return [self.tokenizer.decode(s, skip_special_tokens=True).strip() for s in seqs]

    # -- evaluation ----------------------------------------------------------------------------------
    def predictions_path(self, split: str) -> Path:
        root = self.c.predictions_dir
        if root is None:
            root = str(Path((self.cfg.get("train") or {}).get("output_dir", "runs/train")) / "predictions")
        return Path(root) / f"tvc_{split}.json"

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        """Caption every moment of `split`, write the predictions JSON (into `out_dir` when given), score
        them (see module docstring)."""
        data = self.dataset(split, train=False)
        n = len(data) if self.c.eval_max_clips is None else min(len(data), self.c.eval_max_clips)
        collate = self.collate()
        preds = []
        for s in range(0, n, self.c.eval_batch_size):
            batch = collate([data[i] for i in range(s, min(s + self.c.eval_batch_size, n))])
            batch = self.to_device(batch)
            for meta, cap in zip(batch["meta"], self.generate(batch), strict=True):
                preds.append((meta, cap))
        records = [
            {"clip_id": m["clip_id"], "vid_name": m["vid_name"], "ts": m["ts"], "descs": [{"desc": cap}]}
            for m, cap in preds
        ]
        write_json(
            self.predictions_path(split) if out_dir is None else Path(out_dir) / f"tvc_{split}.json", records
        )
        gts = {str(m["clip_id"]): m["refs"] for m, _ in preds if m["refs"]}
        if not gts:
            return {"n": float(len(preds))}
        res = {str(m["clip_id"]): cap for m, cap in preds if m["refs"]}
        out = caption_scores(gts, res, metrics=self.c.metrics)
        out["n"] = float(len(gts))
        return out

    predict_needs = ("start", "end")

    @torch.no_grad()
    def predict(self, request: PredictRequest) -> TextPrediction:
        """Caption the moment [start, end] seconds of one video: ``{"caption", "frames": [st, ed)}``."""
        start, end, interval = request.start, request.end, request.interval
        if not 0 <= start < end:
            raise InputError(f"captioning: need 0 <= start < end, got start={start}, end={end}")
        feats, step = self.input_video(request.video, interval)
        st, ed = moment_frames((start, end), len(feats), step)
        lo, moment = moment_window(st, ed, len(feats), self.data_cfg)  # a long video: the window around it
        clip = window_clip(
            "input",
            feats,
            request.sentences,
            lo,
            self.data_cfg.max_frames,
            step,
            self.tokenize,
            self.data_cfg.max_sentence_tokens,
        )
        item = {"clip": clip, "moment": moment, "tokens": [], "meta": {}}
        batch = self.to_device(self.collate()([item]))
        return {"caption": self.generate(batch, request.beam_size)[0], "frames": [st, ed]}
