import torch

from tempovl.layers import Attention, Transformer, attend


def test_math_and_sdpa_kernels_agree_with_masks():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 6, 8).unbind(0)  # (B, H, L, Dh)
    mask = torch.rand(2, 1, 6, 6) > 0.3
    mask[..., 0] = True
    ref = torch.softmax((q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~mask, float("-inf")), -1) @ v
    for impl in ("math", "sdpa"):
        torch.testing.assert_close(attend(q, k, v, mask, impl=impl), ref, atol=1e-5, rtol=1e-5)


def test_fully_masked_row_is_finite():
    q, k, v = torch.randn(3, 1, 2, 3, 4).unbind(0)
    mask = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    for impl in ("math", "sdpa"):
        assert torch.isfinite(attend(q, k, v, mask, impl=impl)).all()


def test_padding_does_not_leak():
    torch.manual_seed(0)
    model = Transformer(2, 16, 4, dropout=0.0, attn_dropout=0.0).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16) * 100], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    torch.testing.assert_close(model(padded, mask)[:, :5], model(x), atol=1e-5, rtol=1e-5)


def test_block_diagonal_mask_equals_separate_sequences():
    torch.manual_seed(0)
    attn = Attention(16, 2).eval()
    a, b = torch.randn(1, 3, 16), torch.randn(1, 4, 16)
    packed = torch.cat([a, b], dim=1)
    seg = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    mask = (seg[:, None] == seg[None, :])[None]  # (1, 7, 7)
    out = attn(packed, mask)
    torch.testing.assert_close(out[:, :3], attn(a), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 3:], attn(b), atol=1e-5, rtol=1e-5)


def test_cross_attention_shapes_and_gradients():
    block = Transformer(1, 16, 2, cross_attention=True, kv_dim=24)
    x, kv = torch.randn(2, 5, 16, requires_grad=True), torch.randn(2, 7, 24)
    out = block(x, kv=kv, kv_mask=torch.ones(2, 7, dtype=torch.bool))
    assert out.shape == (2, 5, 16)
    out.sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_bf16_auto_uses_finite_values():
    attn = Attention(32, 4)
    x = torch.randn(2, 10, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x, torch.ones(2, 10, dtype=torch.bool))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
