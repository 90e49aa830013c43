import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from tempovl.engine import distributed as D
from tempovl.engine.checkpoint import load_weights
from tempovl.engine.trainer import train


def test_single_process_helpers_are_identities():
    x = torch.randn(3, 2, requires_grad=True)
    assert D.all_gather_with_grad(x) is x
    assert D.all_reduce_mean({"a": 1.5}) == {"a": 1.5}
    assert D.all_reduce_max([0.0, 2.0]) == [0.0, 2.0]
    assert D.get_world_size() == 1 and D.is_main() and D.all_gather_object(7) == [7]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(toy_cfg, tmp_path):
    """2 ranks x batch 4 == 1 rank x batch 8, with a contrastive sub-task gathering across ranks."""
    # eps=1 keeps AdamW from amplifying float noise in near-zero gradients (see the accumulation test)
    task = {"ratios": {"cls": 1.0, "match": 1.0}}
    opt = {"max_steps": 4, "lr": 0.05, "eps": 1.0, "warmup_steps": 0, "grad_accum": 2}
    one = train(toy_cfg("one", task=task, batch_size=8, **opt))

    cfg = toy_cfg("two", task=task, batch_size=4, **opt)
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "tempovl.cli", "train", str(tmp_path / "two.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    two_dir = tmp_path / "two"
    a = load_weights(one.checkpoint / "model.safetensors")[0]
    b = load_weights(two_dir / "ckpt-0000004" / "model.safetensors")[0]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4, msg=k)
    rows = [
        [json.loads(line) for line in open(d / "metrics.jsonl")] for d in (one.checkpoint.parent, two_dir)
    ]
    assert [r["subtask"] for r in rows[0]] == [r["subtask"] for r in rows[1]]
    assert {r["subtask"] for r in rows[0]} == {"cls", "match"}
    assert [r["loss"] for r in rows[0]] == pytest.approx([r["loss"] for r in rows[1]], rel=1e-5)
    assert rows[1][0]["samples_per_s"] > 0
