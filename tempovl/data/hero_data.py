"""HERO pre-training data: clips of frame features with their aligned, tokenised subtitles, and the
per-sub-task batch builders (MLM, MFM, FOM, VSM) that follow the official HERO code
(linjieli222/HERO ``data/{mlm,mfm,fom,vsm}.py``).

A clip item is a video id, its frame features ``(T, F)`` from the feature store (the first
``max_frames`` frames) and its cross-modal units (``tempovl.data.align.cross_modal_units``): every
subtitle group with the frames it owns, plus an empty-text unit per run of frames that no sentence
covers. Each unit becomes one group of :func:`tempovl.data.packing.pack_clips`: ``[SEP] + tokens``
(``[CLS] + tokens`` for MLM, as the official ``create_mlm_io``).

Sub-task batches (all randomness comes from an optional ``torch.Generator``, so evaluation can fix it):

* ``mlm``: per group, 15 % of the sentence tokens chosen (at least one per non-empty group), 80 % of
  them ``[MASK]``, 10 % a random word, 10 % unchanged; ``mlm_labels`` in the packed layout.
* ``mffr`` / ``mnce``: ``frame_masked (B, T)``, 15 % of the real frames of each clip (at least one).
  The features stay unmasked in the batch: they are the targets, and the model zeroes masked frames.
* ``fom``: 15 % of the real frames permuted among their positions; ``frame_order`` and ``fom_targets``.
* ``vsm``: up to ``query_per_video`` subtitle groups per clip become queries (``[CLS] + tokens``), and
  are removed from the clip's subtitle input (their frames stay, with an empty text); the list is
  padded to exactly ``query_per_video`` by repeating queries, as the official code does. Targets are the
  query's first frame and ``min(max(first + 1, last), T - 1)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tempovl.data.align import align, cross_modal_units, frame_spans
from tempovl.data.features.store import FeatureStore
from tempovl.data.masking import IGNORE, mask_tokens, shuffle_frames
from tempovl.data.packing import one_per_video, pack_clips, pad_ids
from tempovl.data.subtitles import Sentence, read_subtitle_collection, read_subtitle_file, subtitle_file_of
from tempovl.data.tokenizer import load_tokenizer
from tempovl.errors import ConfigError, InputError

log = logging.getLogger(__name__)

SUBTASKS = ("mlm", "mffr", "mnce", "fom", "vsm")


@dataclass
class DataConfig:
    """The ``data:`` section: where the corpus and features are, and how clips are cut."""

    corpus: str = "runs/demo/corpus"
    features: str = "runs/demo/features"
    tokenizer: str | None = None  # local tokenizer directory; None = the MiniLM WordPiece
    # "srt": subtitles/{vid}.srt|.vtt; "tvr": annotations/tvr_subtitles.jsonl; or the path (relative to
    # the corpus) of a TVR/TVQA-format subtitle file, e.g. the public tvqa_preprocessed_subtitles.jsonl
    subtitles: str = "srt"
    # split -> the names it is made of: a split of the corpus's splits.json, or an annotation file
    # (.json/.jsonl, relative to the corpus) whose videos make the split, as the public releases define
    # them (tvr_train_release.jsonl): then no splits.json is needed
    splits: dict[str, list[str]] = field(
        default_factory=lambda: {"train": ["pretrain", "train"], "val": ["val"], "test": ["test"]}
    )
    max_frames: int = 100  # frames per clip (the first ones); <= model.max_clip_len
    # a longer video is read in windows of max_frames frames every window_stride frames (the last one
    # flush with the end); each frame is taken from the window whose centre is nearest. None = half a
    # window (each frame but the first and last quarter-windows sees context on both sides)
    window_stride: int | None = None
    max_sentence_tokens: int = 60  # per subtitle group and per query (official max_txt_len)
    max_videos: int | None = None  # per split, for quick runs
    # the temporal shuffling test: every clip of an evaluation split (not "train") gets its frame rows
    # permuted with a fixed seed per clip; subtitles stay where they were (`tempovl evaluate --shuffle-frames`)
    shuffle_frames: bool = False
    shuffle_seed: int = 0
    # what `predict` needs to extract a user's video as the training features were: filled from the feature
    # store's manifest and recorded in checkpoints
    extractor: str | None = None  # feature extractor spec
    interval: float | None = None  # seconds per feature-frame
    extract_size: int | None = None  # frame size the features were extracted at (None = extractor default)

    def __post_init__(self):
        if self.window_stride is not None and not 1 <= self.window_stride <= self.max_frames:
            raise ConfigError(
                f"data.window_stride: {self.window_stride} must be between 1 and data.max_frames "
                f"({self.max_frames}); windows further apart would skip frames"
            )


@dataclass
class TextSpecials:
    """Special token ids of the tokenizer and the id range of the MLM random-word replacement."""

    cls: int
    sep: int
    mask: int
    pad: int
    random_range: tuple[int, int]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> TextSpecials:
        """Random words come from the longest run of ids that are neither special nor ``[unused]``-style."""
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        best, start = (0, 0), None
        for i, tok in enumerate([*tokens, None]):
            normal = tok is not None and i not in special and not (tok[:1] in "[<" and tok[-1:] in "]>")
            if normal and start is None:
                start = i
            elif not normal and start is not None:
                best = max(best, (start, i), key=lambda r: r[1] - r[0])
                start = None
        return cls(
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
            tokenizer.mask_token_id,
            tokenizer.pad_token_id,
            best,
        )


@dataclass
class Unit:
    """One cross-modal input unit: sentence tokens (no special tokens) and the frames it owns."""

    tokens: list[int]
    frame_ids: list[int]
    is_sentence: bool  # has subtitle text: a VSM query candidate


def read_splits(corpus: Path) -> dict[str, list[str]]:
    path = corpus / "splits.json"
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read the corpus splits ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(splits, dict):
        raise InputError(f"{path}: expected an object of split -> video ids")
    return splits


def subtitle_file(cfg: DataConfig) -> Path:
    """The one subtitle file of all videos `data.subtitles` names: a TVR/TVQA-format .jsonl ("tvr" =
    annotations/tvr_subtitles.jsonl) or VIOLIN's violin_annotation.json (its inline "sub")."""
    name = "annotations/tvr_subtitles.jsonl" if cfg.subtitles == "tvr" else cfg.subtitles
    path = Path(name) if Path(name).is_absolute() else Path(cfg.corpus) / name
    if not path.is_file():
        raise ConfigError(
            f"data.subtitles: {path} is not a file (use 'srt', 'tvr', a TVR-format .jsonl or "
            "violin_annotation.json)"
        )
    return path


def split_videos(corpus: Path, names: Sequence[str], key: str) -> list[str]:
    """The videos of a split made of `names` (DataConfig.splits): splits.json entries, or annotation
    files whose videos (their "vid_name" / "video" / "video_id", first appearance first) make the split;
    "FILE#NAME" keeps the records whose "split" is NAME (MSR-VTT's train_val_videodatainfo.json#validate)
    or, in a {split: {vid: ...}} file, that split's videos (TVR's tvr_video2dur_idx.json#test_public)."""
    vids: list[str] = []
    corpus_splits: dict[str, list[str]] | None = None
    for name in names:
        file, _, only = name.partition("#")
        if file.endswith((".json", ".jsonl", ".csv")):
            vids.extend(
                annotation_videos(corpus / file if not Path(file).is_absolute() else Path(file), only)
            )
            continue
        if corpus_splits is None:
            corpus_splits = read_splits(corpus)
        if name not in corpus_splits:
            raise ConfigError(
                f"{key}: {corpus / 'splits.json'} has no split {name!r} (has {sorted(corpus_splits)})"
            )
        vids.extend(corpus_splits[name])
    return list(dict.fromkeys(vids))  # in order, each once


def annotation_videos(path: Path, split: str = "") -> list[str]:
    """The videos an annotation file names, first appearance first (TVR/TVQA/TVC "vid_name", DiDeMo
    "video", MSR-VTT "video_id", the first column of How2R / How2QA's header-less .csv), only records
    whose "split" is `split` when given; InputError naming the file when it names none."""
    import csv

    from tempovl.data.annotations import HOW2_TIME
    from tempovl.io import read_jsonl

    if not path.is_file():
        raise InputError(f"{path}: annotation file not found (named in data.splits)")
    if path.suffix == ".jsonl":
        records = read_jsonl(path)
    elif path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [row for row in csv.reader(f) if row]
        if rows and len(rows[0]) > 1 and HOW2_TIME.fullmatch(rows[0][1].strip()):
            # How2R / How2QA as released: no header row; the YouTube id, then "[start:end]"
            records = [{"video_id": row[0].strip()} for row in rows]
        else:  # the MSR-VTT 9k / 1k-A lists: a header row with a video_id column
            records = [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e.msg})") from None
        if isinstance(data, dict) and split and isinstance(data.get(split), dict):
            return list(data[split])  # {split: {vid: ...}}: TVR's tvr_video2dur_idx.json#test_public
        if (
            isinstance(data, dict)
            and data
            and all(isinstance(v, dict) and "file" in v for v in data.values())
        ):
            records = list(data.values())  # {clip_id: {"file", "split", ...}}: VIOLIN
        else:
            records = data.get("videos", []) if isinstance(data, dict) else data
    out = []
    for r in records if isinstance(records, list) else []:
        if split and (not isinstance(r, dict) or r.get("split") != split):
            continue
        keys = ("vid_name", "video", "video_id", "file")
        vid = next((r[k] for k in keys if isinstance(r, dict) and k in r), None)
        if isinstance(vid, str) and vid:
            out.append(Path(vid).stem if Path(vid).suffix else vid)
    if not out:
        which = f" of split {split!r}" if split else ""
        raise InputError(
            f"{path}: names no videos{which} (expected records with 'vid_name', 'video' or 'video_id', "
            "or How2R / How2QA .csv rows)"
        )
    return list(dict.fromkeys(out))


def clip_units(
    sentences: Sequence[Sentence], num_frames: int, interval: float, tokenize, max_tokens: int
) -> list[Unit]:
    """Align `sentences` to the first `num_frames` frames (HERO A.4) and tokenise every unit.

    Sentences that start after the last frame are dropped first, so that cutting a clip does not
    merge all later dialogue into its last group."""
    spans = frame_spans(num_frames, interval)
    end = num_frames * interval
    kept = [s for s in sentences if s.start < end]
    units = cross_modal_units(align(spans, kept), spans)
    return [Unit(tokenize(u.text)[:max_tokens] if u.text else [], u.frame_ids, bool(u.text)) for u in units]


def note_long_videos(lengths: Sequence[int], cfg: DataConfig, interval: float, where: str) -> int:
    """Say once how many videos are longer than one window (``data.max_frames``): every task reads them
    in windows, so nothing is cut, except the frame-shuffling test, which shuffles the first window
    only: that is said loudly. Returns the number of long videos."""
    long = [n for n in lengths if n > cfg.max_frames]
    if not long:
        return 0
    head = (
        f"{where}: {len(long)} of {len(lengths)} videos are longer than data.max_frames {cfg.max_frames} "
        f"(the longest is {max(long) * interval:.0f} s): "
    )
    if cfg.shuffle_frames:
        log.warning(
            head + "the frame-shuffling test reads only their first %.0f s", cfg.max_frames * interval
        )
    else:
        log.info(
            head + "they are read in windows of %.0f s every %.0f s, nothing is cut",
            cfg.max_frames * interval,
            window_stride(cfg) * interval,
        )
    return len(long)


def window_clip(
    vid: str,
    feats: np.ndarray,
    sentences: Sequence[Sentence],
    lo: int,
    length: int,
    interval: float,
    tokenize,
    max_tokens: int,
) -> dict:
    """The clip item of frames [lo, lo + length) of a video (features (T, F) of the whole video): its
    subtitles are those overlapping the window, their times shifted to it. The one way a window of a
    long video becomes a HERO clip (evaluation, predict, search and training windows)."""
    clip = feats[lo : lo + length]  # (Tc, F)
    t0 = lo * interval
    shifted = [
        Sentence(s.text, s.start - t0, s.end - t0, s.speaker)
        for s in sentences
        if s.start < t0 + len(clip) * interval and s.end > t0
    ]
    return {
        "vid": vid,
        "frame_feats": clip,
        "units": clip_units(shifted, len(clip), interval, tokenize, max_tokens),
    }


def window_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """First frames of the `length`-frame windows that cover a video of `num_frames` frames: every
    `stride` frames, the last one flush with the end ([0] when the video fits one window)."""
    if num_frames <= length:
        return [0]
    last = num_frames - length
    starts = list(range(0, last + 1, max(1, stride)))
    return starts if starts[-1] == last else [*starts, last]


def window_keeps(starts: Sequence[int], length: int, num_frames: int) -> list[tuple[int, int]]:
    """The frames [a, b) (video time) each window gives to the merged video: every frame comes from
    the window whose centre is nearest to it (ties to the earlier one), so it is encoded with as much
    context on both sides as the windows allow. The ranges tile [0, num_frames)."""
    cuts = [(s0 + s1 + length + 1) // 2 for s0, s1 in zip(starts, starts[1:])]  # nearest-centre borders
    return list(zip([0, *cuts], [*cuts, num_frames]))


def video_windows(
    vid: str,
    feats: np.ndarray,
    sentences: Sequence[Sentence],
    cfg: DataConfig,
    interval: float,
    tokenize,
) -> list[tuple[dict, tuple[int, int]]]:
    """A whole video (features (T, F)) as overlapping windows (``data.max_frames`` every
    ``data.window_stride``): [(window clip item, (a, b) the frames it keeps, relative to the window)].
    Concatenating each window's kept frames gives the video's T frames in order (`window_keeps`)."""
    length = cfg.max_frames
    starts = window_starts(len(feats), length, window_stride(cfg))
    keeps = window_keeps(starts, length, len(feats))
    return [
        (
            window_clip(
                f"{vid}@{lo}", feats, sentences, lo, length, interval, tokenize, cfg.max_sentence_tokens
            ),
            (a - lo, b - lo),
        )
        for lo, (a, b) in zip(starts, keeps)
    ]


def window_stride(cfg: DataConfig) -> int:
    """``data.window_stride`` (None = half of ``data.max_frames``)."""
    return cfg.window_stride if cfg.window_stride is not None else max(1, cfg.max_frames // 2)


def training_window(st: int, ed: int, num_frames: int, length: int, stride: int) -> int:
    """First frame of the `length`-frame window a moment of frames [st, ed] trains in: 0 when the video
    fits one window; else the first window of the grid that `predict` and `evaluate` read
    (`window_starts`) that holds the moment, or one centred on it when none does."""
    starts = window_starts(num_frames, length, stride)
    for lo in starts:
        if lo <= st and ed < lo + length:
            return lo
    return int(min(max(0, (st + ed + 1) // 2 - length // 2), starts[-1]))


def moment_window(st: int, ed: int, num_frames: int, cfg: DataConfig) -> tuple[int, tuple[int, int]]:
    """The window a moment of frames [st, ed] of a `num_frames`-frame video is read in
    (`training_window` on the grid of ``data.max_frames`` / ``data.window_stride``): its first frame, and
    the moment's frames inside it (clipped to it when the moment is longer than a window)."""
    length = cfg.max_frames
    lo = training_window(st, ed, num_frames, length, window_stride(cfg))
    return lo, (max(st, lo) - lo, min(ed, lo + length - 1) - lo)


class HeroClipDataset(Dataset):
    """Clips of one split: ``{"vid", "frame_feats" (T, F) float32, "units": [Unit]}``.

    Subtitles are read, aligned and tokenised once here; features are read per item from the store."""

    def __init__(self, cfg: DataConfig, split: str, tokenizer=None, store: FeatureStore | None = None):
        if split not in cfg.splits:
            raise ConfigError(f"data.splits: no entry for split {split!r} (have {sorted(cfg.splits)})")
        corpus = Path(cfg.corpus)
        self.cfg, self.split = cfg, split
        self.store = store if store is not None else FeatureStore(cfg.features)
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.tokenizer)
        vids = split_videos(corpus, cfg.splits[split], f"data.splits.{split}")
        if cfg.max_videos is not None:
            vids = vids[: cfg.max_videos]
        missing = [v for v in vids if v not in self.store]
        if missing:
            raise InputError(
                f"{cfg.features}: no features for {len(missing)} video(s) of split {split!r}, "
                f"e.g. {missing[:3]} (extract them with `tempovl features extract`)"
            )
        tvr = read_subtitle_collection(subtitle_file(cfg)) if cfg.subtitles != "srt" else {}

        def tokenize(text: str) -> list[int]:
            return tokenizer(text, add_special_tokens=False)["input_ids"]

        self.tokenize = tokenize

        self.vids = vids
        self.num_frames = [min(self.store.num_frames(v), cfg.max_frames) for v in vids]
        note_long_videos([self.store.num_frames(v) for v in vids], cfg, self.store.interval, f"{split} split")
        self.units: list[list[Unit]] = []
        self.sentences: list[list[Sentence]] = []  # whole videos' subtitles (`whole_video`)
        for vid, t in zip(vids, self.num_frames, strict=True):
            if cfg.subtitles != "srt":
                sentences = tvr.get(vid, [])
            else:
                path = subtitle_file_of(corpus / "subtitles", vid)
                sentences = read_subtitle_file(path) if path else []  # single-channel: none
            self.sentences.append(sentences)
            self.units.append(
                clip_units(sentences, t, self.store.interval, tokenize, cfg.max_sentence_tokens)
            )

    def __len__(self) -> int:
        return len(self.vids)

    def window(self, i: int, lo: int) -> dict:
        """The clip item of frames [lo, lo + max_frames) of video i (`window_clip`); lo 0 is item i."""
        if lo == 0:
            return self[i]
        feats, sentences = self.whole_video(i)
        return window_clip(
            self.vids[i],
            feats,
            sentences,
            lo,
            self.cfg.max_frames,
            self.store.interval,
            self.tokenize,
            self.cfg.max_sentence_tokens,
        )

    def windows(self, i: int) -> list[tuple[dict, tuple[int, int]]]:
        """Video i whole, as overlapping windows with the frames each keeps (`video_windows`)."""
        feats, sentences = self.whole_video(i)
        return video_windows(self.vids[i], feats, sentences, self.cfg, self.store.interval, self.tokenize)

    def whole_video(self, i: int) -> tuple[np.ndarray, list[Sentence]]:
        """All feature-frames (T, F) of video i, past ``max_frames`` too, and its subtitles: what
        evaluation encodes in consecutive windows as `predict` and `search` do."""
        return np.asarray(self.store[self.vids[i]], dtype=np.float32), self.sentences[i]

    def __getitem__(self, i: int) -> dict:
        t = self.num_frames[i]
        feats = self.store[self.vids[i]][:t]
        if self.cfg.shuffle_frames and self.split != "train":
            feats = feats[np.random.default_rng([self.cfg.shuffle_seed, i]).permutation(t)]
        return {"vid": self.vids[i], "frame_feats": feats, "units": self.units[i]}

    def with_queries(self) -> list[int]:
        """Indices of the clips that have at least one VSM query candidate."""
        return [i for i, units in enumerate(self.units) if query_candidates(units)]


class ClipWindows(Dataset):
    """Every video of `clips` whole, in windows of ``data.max_frames`` frames side by side (the last one
    flush with the end): what HERO pre-training reads, so a long video is learnt from beyond its first
    window. A video that fits one window is its one clip item."""

    def __init__(self, clips: HeroClipDataset):
        length = clips.cfg.max_frames
        self.clips = clips
        self.keys = [
            (i, lo)
            for i, vid in enumerate(clips.vids)
            for lo in window_starts(clips.store.num_frames(vid), length, length)
        ]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, j: int) -> dict:
        i, lo = self.keys[j]
        item = self.clips.window(i, lo)
        return item if lo == 0 else {**item, "vid": f"{item['vid']}@{lo}"}  # a clip of its own (VSM)

    def with_queries(self) -> list[int]:
        """Indices of the windows that have at least one VSM query candidate."""
        fits = set(self.clips.with_queries())
        return [
            j
            for j, (i, lo) in enumerate(self.keys)
            if (i in fits if lo == 0 else query_candidates(self[j]["units"]))
        ]


# ------------------------------------------------------------------------------------ builders


def pad_frames(items: Sequence[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame features (B, T, F) zero-padded to the longest clip, and ``frame_mask (B, T)``."""
    lengths = [len(it["frame_feats"]) for it in items]
    t, f = max(lengths), items[0]["frame_feats"].shape[1]
    feats = torch.zeros(len(items), t, f)
    for b, it in enumerate(items):
        feats[b, : lengths[b]] = torch.from_numpy(np.asarray(it["frame_feats"], dtype=np.float32))
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]  # (B, T)
    return feats, mask


def mask_group(
    tokens: Sequence[int], sp: TextSpecials, prob: float, generator: torch.Generator | None
) -> tuple[list[int], list[int]]:
    """MLM on one group: ``([CLS] + masked tokens, labels)``, labels -100 at [CLS] and unchosen tokens."""
    if not tokens:
        return [sp.cls], [IGNORE]
    ids = torch.tensor(list(tokens), dtype=torch.long)
    masked, labels = mask_tokens(
        ids, torch.ones_like(ids, dtype=torch.bool), sp.mask, sp.random_range, prob, generator
    )
    return [sp.cls, *masked.tolist()], [IGNORE, *labels.tolist()]


def sample_frame_mask(
    frame_mask: torch.Tensor, prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """MFM: each real frame masked with `prob`, at least one per clip (official ``_get_img_mask``)."""
    chosen = (torch.rand(frame_mask.shape, generator=generator) < prob) & frame_mask
    for b in range(frame_mask.shape[0]):
        n = int(frame_mask[b].sum())
        if n and not chosen[b].any():
            chosen[b, int(torch.randint(n, (1,), generator=generator))] = True
    return chosen


def query_candidates(units: Sequence[Unit]) -> list[int]:
    """Units that can serve as VSM queries: subtitle text with tokens and frames."""
    return [u for u, unit in enumerate(units) if unit.is_sentence and unit.tokens and unit.frame_ids]


def sample_queries(candidates: Sequence[int], n: int, generator: torch.Generator | None) -> list[int]:
    """Up to `n` distinct candidates (random, kept in time order)."""
    if len(candidates) <= n:
        return list(candidates)
    pick = torch.randperm(len(candidates), generator=generator)[:n].sort().values
    return [candidates[i] for i in pick.tolist()]


def span_target(frame_ids: Sequence[int], num_frames: int) -> tuple[int, int]:
    """Official VSM start/end frame of a query: first frame, ``min(max(first + 1, last), T - 1)``."""
    st = frame_ids[0]
    return st, min(max(st + 1, frame_ids[-1]), num_frames - 1)


class HeroCollate:
    """Builds the batch of one sub-task from clip items (see the module docstring)."""

    def __init__(
        self,
        subtask: str,
        specials: TextSpecials,
        pack_max_len: int | None = 128,
        mask_prob: float = 0.15,
        frame_mask_prob: float = 0.15,
        fom_prob: float = 0.15,
        query_per_video: int = 5,
        generator: torch.Generator | None = None,
    ):
        if subtask not in SUBTASKS:
            raise ConfigError(f"unknown HERO sub-task {subtask!r}; known: {', '.join(SUBTASKS)}")
        self.subtask, self.sp, self.pack_max_len = subtask, specials, pack_max_len
        self.mask_prob, self.frame_mask_prob, self.fom_prob = mask_prob, frame_mask_prob, fom_prob
        self.query_per_video, self.generator = query_per_video, generator

    def _pack(self, groups: list[list[tuple[list[int], list[int]]]], num_frames: list[int], pad: int) -> dict:
        return pack_clips(groups, num_frames, max_len=self.pack_max_len, pad_id=pad)

    def __call__(self, items: list[dict]) -> dict:
        sp, g = self.sp, self.generator
        if self.subtask == "vsm":
            items = one_per_video(items)  # a clip twice in one batch would be its own negative
        frame_feats, frame_mask = pad_frames(items)
        num_frames = [len(it["frame_feats"]) for it in items]
        batch: dict = {"vids": [it["vid"] for it in items]}
        if self.subtask == "mlm":
            groups, labels = [], []
            for it in items:
                masked = [mask_group(u.tokens, sp, self.mask_prob, g) for u in it["units"]]
                groups.append([(ids, u.frame_ids) for (ids, _), u in zip(masked, it["units"], strict=True)])
                labels.append([(lab, u.frame_ids) for (_, lab), u in zip(masked, it["units"], strict=True)])
            batch.update(self._pack(groups, num_frames, sp.pad))
            # same group sizes -> the same packed layout; the label copy carries -100 off the tokens
            batch["mlm_labels"] = self._pack(labels, num_frames, IGNORE)["pack_token_ids"]
        elif self.subtask == "vsm":
            batch.update(self._vsm(items, num_frames))
        else:
            groups = [[([sp.sep, *u.tokens], u.frame_ids) for u in it["units"]] for it in items]
            batch.update(self._pack(groups, num_frames, sp.pad))
            if self.subtask in ("mffr", "mnce"):
                batch["frame_masked"] = sample_frame_mask(frame_mask, self.frame_mask_prob, g)
            elif self.subtask == "fom":
                batch["frame_order"], batch["fom_targets"] = shuffle_frames(frame_mask, self.fom_prob, g)
        batch["frame_feats"], batch["frame_mask"] = frame_feats, frame_mask
        return batch

    def _vsm(self, items: list[dict], num_frames: list[int]) -> dict:
        sp = self.sp
        groups, queries, targets, query_video, repeat = [], [], [], [], []
        for b, it in enumerate(items):
            units = it["units"]
            cands = query_candidates(units)
            if not cands:
                raise InputError(f"{it['vid']}: no subtitle sentence to use as a VSM query")
            chosen = sample_queries(cands, self.query_per_video, self.generator)
            groups.append(
                [
                    ([sp.sep] if u in chosen else [sp.sep, *unit.tokens], unit.frame_ids)
                    for u, unit in enumerate(units)
                ]
            )
            picks = [chosen[k % len(chosen)] for k in range(self.query_per_video)]  # official repeat-padding
            for k, u in enumerate(picks):
                repeat.append(k >= len(chosen))
                queries.append([sp.cls, *units[u].tokens])
                targets.append(span_target(units[u].frame_ids, num_frames[b]))
                query_video.append(b)
        out = self._pack(groups, num_frames, sp.pad)
        out["query_ids"], out["query_mask"] = pad_ids(queries, sp.pad)  # (Nq, Lq) each
        out["span_targets"] = torch.tensor(targets, dtype=torch.long)  # (Nq, 2)
        out["query_video"] = torch.tensor(query_video, dtype=torch.long)  # (Nq,)
        out["query_repeat"] = torch.tensor(repeat, dtype=torch.bool)  # (Nq,) a padding copy
        return out
