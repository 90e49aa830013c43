"""Batch layout. :func:`pad_ids`: token-id rows -> padded ids + mask, used by every pipeline.
:func:`pack_clips`: HERO's packed layout, the sentence groups of a batch of clips packed into rows for the
cross-modal pass (one attention block per group), built by every HERO data pipeline and read by the HERO
models (``tempovl.models.hero``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tempovl.errors import InputError


def pack_clips(
    clips: Sequence[Sequence[tuple[Sequence[int], Sequence[int]]]],
    num_frames: Sequence[int],
    max_len: int | None = 128,
    pad_id: int = 1,
) -> dict[str, torch.Tensor]:
    """Pack the sentence groups of a batch of clips into rows for the cross-modal pass.

    ``clips[b]`` is a list of groups ``(token_ids, frame_ids)``: a subtitle sentence (the official
    format is ``[SEP] + sentence tokens``; frames with no sentence form a group whose text is just
    ``[SEP]``) and the indices of its frames in clip ``b``. Returns (R rows, L slots, G groups):

    * ``pack_frame_index (R, L)``: flat frame index ``b * T + t`` at frame slots, -1 elsewhere;
    * ``pack_token_ids (R, L)``: token ids at token slots, ``pad_id`` elsewhere;
    * ``pack_position_ids (R, L)``: position inside the group (frames and tokens each from 0);
    * ``pack_group (R, L)``: global group id of each slot, -1 for padding (block-diagonal mask);
    * ``group_clip (G,)``: the clip of each group; ``frame_group (B, T)``: a frame's group or -1;
    * ``clip_token_index (B, Lt)``: flat slot index ``r * L + l`` of every token of clip b, -1 = pad
      (the flat F-TRM baseline reads the same batch).
    """
    if len(clips) != len(num_frames):
        raise InputError(f"pack_clips: {len(clips)} clips but {len(num_frames)} frame counts")
    t_max = max(num_frames) if num_frames else 0
    groups = []  # (clip, token_ids, frame_ids)
    for b, clip in enumerate(clips):
        for g, (tokens, frames) in enumerate(clip):
            bad = [f for f in frames if not 0 <= f < num_frames[b]]
            if bad:
                raise InputError(f"clip {b}, group {g}: frame ids {bad} outside 0..{num_frames[b] - 1}")
            groups.append((b, list(tokens), list(frames)))
    sizes = [len(t) + len(f) for _, t, f in groups]
    longest = max(sizes, default=1)
    rows: list[list[int]] = []
    if max_len is None:  # padding mode: one group per row
        rows = [[i] for i in range(len(groups))]
    else:
        budget, fill = max(max_len, longest), []
        for i in sorted(range(len(groups)), key=lambda i: -sizes[i]):  # first-fit decreasing
            for r, used in enumerate(fill):
                if used + sizes[i] <= budget:
                    rows[r].append(i)
                    fill[r] += sizes[i]
                    break
            else:
                rows.append([i])
                fill.append(sizes[i])
    width = max((sum(sizes[i] for i in row) for row in rows), default=1)
    n_rows = max(len(rows), 1)
    frame_index = torch.full((n_rows, width), -1, dtype=torch.long)
    token_ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n_rows, width), dtype=torch.long)
    group = torch.full((n_rows, width), -1, dtype=torch.long)
    frame_group = torch.full((len(clips), max(t_max, 1)), -1, dtype=torch.long)
    clip_tokens: list[list[tuple[int, int]]] = [[] for _ in clips]  # (group, slot) per clip
    for r, row in enumerate(rows):
        s = 0
        for i in sorted(row):  # keep the clip's group order inside a row (determinism)
            b, tokens, frames = groups[i]
            nf, nt = len(frames), len(tokens)
            frame_index[r, s : s + nf] = torch.tensor(frames, dtype=torch.long) + b * t_max
            position_ids[r, s : s + nf] = torch.arange(nf)
            token_ids[r, s + nf : s + nf + nt] = torch.tensor(tokens, dtype=torch.long)
            position_ids[r, s + nf : s + nf + nt] = torch.arange(nt)
            group[r, s : s + nf + nt] = i
            frame_group[b, frames] = i
            clip_tokens[b].extend((i, r * width + s + nf + j) for j in range(nt))
            s += nf + nt
    lt = max((len(c) for c in clip_tokens), default=0)
    clip_token_index = torch.full((len(clips), max(lt, 1)), -1, dtype=torch.long)
    for b, idx in enumerate(clip_tokens):
        clip_token_index[b, : len(idx)] = torch.tensor([slot for _, slot in sorted(idx)], dtype=torch.long)
    return {
        "pack_frame_index": frame_index,
        "pack_token_ids": token_ids,
        "pack_position_ids": position_ids,
        "pack_group": group,
        "group_clip": torch.tensor([b for b, _, _ in groups], dtype=torch.long),
        "frame_group": frame_group,
        "clip_token_index": clip_token_index,
    }


def pad_ids(rows: Sequence[Sequence[int] | torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows (lists or 1-D tensors) -> (ids (N, L) right-padded with `pad_id`, mask (N, L) bool), on
    the device of the first row when it is a tensor."""
    device = rows[0].device if isinstance(rows[0], torch.Tensor) else None
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool, device=device)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long, device=device)
        mask[i, : len(r)] = True
    return ids, mask


def one_per_video(items: list[dict]) -> list[dict]:
    """The items of a batch with the first of each ``vid`` only. The engine's batches may straddle two
    epochs, so a batch can hold one clip twice; a matching loss (VSM) would then take the copy for a
    negative of its own queries."""
    seen: set[str] = set()
    out = []
    for it in items:
        if it["vid"] not in seen:
            seen.add(it["vid"])
            out.append(it)
    return out
