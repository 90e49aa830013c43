from collections import Counter
from itertools import islice

import numpy as np

from tempovl.engine.data import ShardedBatchSampler, global_indices
from tempovl.engine.trainer import pick_subtask


def test_shards_cover_each_epoch_exactly_once_without_padding():
    length, bs, world = 10, 2, 3  # 10 items, 6 per micro-step: batches straddle epochs
    per_rank = [
        [i for b in islice(ShardedBatchSampler(length, bs, r, world, seed=1, key="x"), 5) for i in b]
        for r in range(world)
    ]
    # interleave back into the global order: micro-step m, rank r takes slice r
    stream = []
    for m in range(5):
        for r in range(world):
            stream += per_rank[r][m * bs : (m + 1) * bs]
    assert stream == global_indices(length, 1, "x", 0, 30)
    for epoch in range(3):
        assert sorted(stream[epoch * length : (epoch + 1) * length]) == list(range(length))
    assert stream[:length] != stream[length : 2 * length]  # a new permutation each epoch


def test_sampler_resumes_from_position():
    full = [b for b in islice(ShardedBatchSampler(7, 3, 1, 2, seed=0, key="k"), 6)]
    resumed = [b for b in islice(ShardedBatchSampler(7, 3, 1, 2, seed=0, key="k", start=2 * 6), 4)]
    assert resumed == full[2:]


def test_subtask_sampling_ratios_deterministic():
    ratios = {"mlm": 3.0, "vsm": 1.0}
    draws = [pick_subtask(ratios, seed=5, step=s) for s in range(4000)]
    assert draws == [pick_subtask(ratios, seed=5, step=s) for s in range(4000)]
    frac = Counter(draws)["mlm"] / len(draws)
    assert abs(frac - 0.75) < 0.03
    other = [pick_subtask(ratios, seed=6, step=s) for s in range(4000)]
    assert other != draws
    assert np.all([pick_subtask({"only": 1.0}, 0, s) == "only" for s in range(10)])
