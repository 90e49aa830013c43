"""Per-rank data streams with an exact, resumable position.

Each sub-task's training set is read as an endless stream of epochs; epoch `e` is a permutation seeded
by (seed, sub-task, e), identical on every rank. A global batch is the next
``world_size * batch_size * grad_accum`` indices of that stream: micro-step `m` takes the next
``world_size * batch_size`` of them and rank `r` takes slice `r`. So within an epoch every item is used
exactly once (no padding, no dropped tail: a batch may straddle two epochs), the same global batch gives
the same result on 1 or N processes, and the whole position is one integer (items consumed).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def epoch_permutation(length: int, seed: int, key: str, epoch: int) -> torch.Tensor:
    """The order of epoch `epoch` of a dataset of `length` items; the same on every rank and platform."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode()) * 7919 + epoch) % 2**63)
    return torch.randperm(length, generator=g)


def global_indices(length: int, seed: int, key: str, start: int, count: int) -> list[int]:
    """Indices `start .. start + count` of the endless epoch stream."""
    out: list[int] = []
    pos = start
    perm, perm_epoch = None, -1
    while len(out) < count:
        epoch, offset = divmod(pos, length)
        if epoch != perm_epoch:
            perm, perm_epoch = epoch_permutation(length, seed, key, epoch), epoch
        take = min(length - offset, count - len(out))
        out.extend(perm[offset : offset + take].tolist())
        pos += take
    return out


class ShardedBatchSampler(Sampler[list[int]]):
    """Endless per-rank micro-batches of indices, starting at global position `start` (items consumed)."""

    def __init__(
        self,
        length: int,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        key: str,
        start: int = 0,
    ):
        if length < 1:
            raise ValueError(f"sub-task {key!r}: the training set is empty")
        self.length, self.batch_size, self.rank, self.world_size = length, batch_size, rank, world_size
        self.seed, self.key, self.start = seed, key, start

    def __iter__(self) -> Iterator[list[int]]:
        pos = self.start
        per_micro = self.world_size * self.batch_size
        while True:
            micro = global_indices(self.length, self.seed, self.key, pos, per_micro)
            yield micro[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            pos += per_micro


class SubtaskStream:
    """A sub-task's data iterator whose position (items consumed over all ranks) is saved for resume."""

    def __init__(
        self,
        dataset: Dataset,
        collate: Callable[[list], dict],
        name: str,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        num_workers: int = 0,
        position: int = 0,
    ):
        self.name = name
        self.position = position
        self.per_micro = world_size * batch_size
        sampler = ShardedBatchSampler(len(dataset), batch_size, rank, world_size, seed, name, position)
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            # own generator (worker seeds): keeps the global RNG untouched, varies with the resume position
            generator=torch.Generator().manual_seed(seed * 7919 + position * 31 + rank),
        )
        self._it: Iterator | None = None

    def next_batch(self) -> dict:
        """The next micro-batch of this rank; advances the global position by one micro-step."""
        if self._it is None:
            self._it = iter(self.loader)
        batch = next(self._it)
        self.position += self.per_micro
        return batch
