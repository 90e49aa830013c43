import torch

from tempovl.layers.pooling import AttentionPool


def test_pooling_is_a_masked_softmax_average():
    torch.manual_seed(0)
    pool = AttentionPool(4)
    x, mask = torch.randn(2, 5, 4), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = pool(x, mask, dim=1)
    w = (x @ pool.weight[0]).masked_fill(~mask, float("-inf")).softmax(dim=1)
    assert torch.allclose(out, (w[..., None] * x).sum(1), atol=1e-6)
    x2 = x.clone()
    x2[0, 3:] = 100.0  # padded positions do not matter
    assert torch.allclose(pool(x2, mask, dim=1)[0], out[0], atol=1e-6)


def test_one_weight_named_weight_and_old_checkpoints_load():
    """The official HERO key (``query_encoder.pool.weight``) and the QA heads' older ``score.weight``."""
    pool = AttentionPool(3)
    assert list(pool.state_dict()) == ["weight"]
    heads = torch.nn.ModuleDict({"qa_pool": AttentionPool(3)})
    old = {"qa_pool.score.weight": torch.arange(3.0)[None]}
    heads.load_state_dict(old, strict=True)
    assert torch.equal(heads["qa_pool"].weight, torch.arange(3.0)[None])
