"""HiTeA's video backbones: MViTv2 (pooling attention) and TimeSformer (divided space-time attention)."""

from __future__ import annotations

import pytest
import torch

from tempovl.errors import ConfigError
from tempovl.models.mvit import (
    MultiScaleAttention,
    MViT,
    MViTConfig,
    adapt_rel_pos_tables,
    axis_rel_pos,
    hitea_video_key_map,
    mvit_tiny_config,
    rel_pos_index,
)
from tempovl.models.timesformer import (
    TimeSformer,
    TimeSformerConfig,
    build_video_encoder,
    split_fused_qkv,
    timesformer_tiny_config,
)


def halve(n: int) -> int:
    """Output length of kernel 3, padding 1, stride 2 (conv and max-pool alike)."""
    return (n - 1) // 2 + 1


def mvit_tokens(cfg: MViTConfig, t: int, h: int, w: int) -> int:
    """M for the tiny MViT: conv stem (3,7,7)/(2,4,4) then one spatial halving per later stage."""
    tt, hh, ww = (t + 2 - 3) // 2 + 1, (h + 6 - 7) // 4 + 1, (w + 6 - 7) // 4 + 1
    for _ in cfg.stage_ends[1:]:
        hh, ww = halve(hh), halve(ww)
    return tt * hh * ww


@pytest.mark.parametrize("t,h,w", [(4, 32, 32), (8, 32, 32), (1, 32, 32), (3, 48, 48), (6, 40, 56)])
def test_mvit_shapes_for_frame_counts_and_resolutions(t, h, w):
    torch.manual_seed(0)
    cfg = mvit_tiny_config()
    model = MViT(cfg).eval()
    out = model(torch.randn(2, t, 3, h, w))
    assert out.shape == (2, 1 + mvit_tokens(cfg, t, h, w), cfg.out_dim)
    assert model.out_dim == 32
    assert torch.isfinite(out).all()


def test_mvit_base_token_count_at_8x224():
    # 8 frames of 224²: stem -> 4 x 56 x 56, then 28, 14, 7: M = 4·7·7 = 196
    assert mvit_tokens(MViTConfig(), 8, 224, 224) == 196


@pytest.mark.parametrize("t,h,w", [(4, 32, 32), (8, 48, 48), (1, 40, 24)])
def test_timesformer_shapes_for_frame_counts_and_resolutions(t, h, w):
    torch.manual_seed(0)
    cfg = timesformer_tiny_config()
    model = TimeSformer(cfg).eval()
    out = model(torch.randn(2, t, 3, h, w))
    assert out.shape == (2, 1 + t * (h // 8) * (w // 8), cfg.dim)
    assert torch.isfinite(out).all()


def _randomise(model: torch.nn.Module) -> None:
    """Small random values everywhere, so no branch starts at exactly zero (e.g. TimeSformer's temporal_fc)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


@pytest.mark.parametrize("kind", ["mvit", "timesformer"])
def test_every_parameter_gets_a_gradient(kind):
    torch.manual_seed(0)
    model = MViT(mvit_tiny_config()) if kind == "mvit" else TimeSformer(timesformer_tiny_config())
    _randomise(model)
    out = model(torch.randn(2, 4, 3, 32, 32))
    out.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.slow  # the first non-reentrant checkpoint call costs ~1-4 s of one-time set-up in torch
def test_mvit_grad_checkpoint_matches_plain_gradients():
    torch.manual_seed(0)
    plain = MViT(mvit_tiny_config())
    ckpt = MViT(mvit_tiny_config(grad_checkpoint=True))
    ckpt.load_state_dict(plain.state_dict())
    video = torch.randn(1, 4, 3, 32, 32)
    for m in (plain, ckpt):
        m(video).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_rel_pos_index_by_hand():
    # same sizes: the classic i - j + (k - 1)
    assert rel_pos_index(3, 3).tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]
    # keys pooled 2x (q 4, k 2): key j sits at 2j on the query scale -> i - 2j + 2, table length 7
    assert rel_pos_index(4, 2).tolist() == [[2, 0], [3, 1], [4, 2], [5, 3]]
    # queries pooled 2x (q 2, k 4): query i sits at 2i -> 2i - j + 3
    assert rel_pos_index(2, 4).tolist() == [[3, 2, 1, 0], [5, 4, 3, 2]]


def test_rel_pos_table_is_interpolated_when_sizes_differ():
    table = torch.arange(5, dtype=torch.float32)[:, None].repeat(1, 2)  # (5, 2), rows 0..4
    r = axis_rel_pos(table, 2, 2)  # needs 3 offsets: the 5-row table is resized linearly
    assert r.shape == (2, 2, 2)
    assert r[0, 1, 0] < r[0, 0, 0] < r[1, 0, 0]  # offsets -1 < 0 < +1 keep their order


@pytest.mark.parametrize(
    "stride_q,stride_kv", [((1, 1, 1), (1, 1, 1)), ((1, 2, 2), (1, 2, 2)), ((1, 1, 1), (1, 2, 2))]
)
def test_decomposed_rel_pos_matches_direct_computation(stride_q, stride_kv):
    torch.manual_seed(0)
    grid = (2, 4, 4)
    attn = MultiScaleAttention(8, 8, 2, grid, (3, 3, 3), stride_q, stride_kv).eval()
    with torch.no_grad():
        attn.rel_pos_t.normal_()  # the release starts rel_pos_t at zero; make every table matter
        attn.rel_pos_h.normal_()
        attn.rel_pos_w.normal_()
    x = torch.randn(2, 1 + 2 * 4 * 4, 8)
    out, q_thw = attn(x, grid)

    q, k, v, q_thw2, k_thw = attn.pooled_qkv(x, grid)
    assert q_thw == q_thw2
    q_pos = [(t, h, w) for t in range(q_thw[0]) for h in range(q_thw[1]) for w in range(q_thw[2])]
    k_pos = [(t, h, w) for t in range(k_thw[0]) for h in range(k_thw[1]) for w in range(k_thw[2])]
    r_t = axis_rel_pos(attn.rel_pos_t, q_thw[0], k_thw[0])
    r_h = axis_rel_pos(attn.rel_pos_h, q_thw[1], k_thw[1])
    r_w = axis_rel_pos(attn.rel_pos_w, q_thw[2], k_thw[2])
    scores = (q @ k.transpose(-1, -2)) / attn.head_dim**0.5  # (B, H, 1 + Lq, 1 + Lk)
    bias = torch.zeros_like(scores)
    for i, (qt, qh, qw) in enumerate(q_pos):  # cls row and column (index 0) get no bias
        for j, (kt, kh, kw) in enumerate(k_pos):
            qi = q[:, :, 1 + i]  # (B, H, Dh)
            bias[:, :, 1 + i, 1 + j] = qi @ r_t[qt, kt] + qi @ r_h[qh, kh] + qi @ r_w[qw, kw]
    direct = (scores + bias).softmax(-1) @ v
    direct[:, :, 1:] += q[:, :, 1:]  # residual pooling
    b, nh, n, dh = direct.shape
    direct = attn.proj(direct.transpose(1, 2).reshape(b, n, nh * dh))
    assert torch.allclose(out, direct, atol=1e-5)


def test_residual_pooling_adds_pooled_q_except_cls():
    torch.manual_seed(0)
    grid = (2, 4, 4)
    attn = MultiScaleAttention(8, 8, 2, grid, (3, 3, 3), (1, 2, 2), (1, 2, 2)).eval()
    x = torch.randn(1, 1 + 32, 8)
    with_res, _ = attn(x, grid)
    attn.residual_pooling = False
    without, _ = attn(x, grid)
    q = attn.pooled_qkv(x, grid)[0]  # (B, H, 1 + Lq, Dh)
    q_tokens = q.transpose(1, 2).flatten(2)  # (B, 1 + Lq, D)
    diff = with_res - without
    assert torch.allclose(diff[:, 0], torch.zeros_like(diff[:, 0]), atol=1e-6)  # cls untouched
    assert torch.allclose(diff[:, 1:], q_tokens[:, 1:] @ attn.proj.weight.t(), atol=1e-5)
    assert MViTConfig().residual_pooling  # on in the base config


def test_mvit_stage_schedule_of_base_config():
    with torch.device("meta"):
        model = MViT(MViTConfig())
    dims = [blk.attn.dim_out for blk in model.blocks]
    heads = [blk.attn.num_heads for blk in model.blocks]
    assert dims == [96] * 2 + [192] * 3 + [384] * 16 + [768] * 3
    assert heads == [1] * 2 + [2] * 3 + [4] * 16 + [8] * 3
    assert model.patch_embed.proj.kernel_size == (3, 7, 7) and model.patch_embed.proj.stride == (2, 4, 4)
    assert [blk.attn.pool_q.stride for blk in model.blocks if blk.attn.pool_q.stride != (1, 1, 1)] == [
        (1, 2, 2)
    ] * 3
    assert model.blocks[0].attn.pool_k.stride == (1, 4, 4) and model.blocks[2].attn.pool_k.stride == (1, 2, 2)
    assert model.blocks[5].attn.pool_k.stride == (1, 1, 1)
    assert model.blocks[0].attn.rel_pos_h.shape == (111, 96) and model.blocks[23].attn.rel_pos_h.shape == (
        13,
        96,
    )
    assert model.out_proj is None and model.out_dim == 768


def test_base_parameter_counts(capsys):
    with torch.device("meta"):
        mvit, tsf = MViT(MViTConfig()), TimeSformer(TimeSformerConfig())
    n_mvit = sum(p.numel() for p in mvit.parameters())
    n_tsf = sum(p.numel() for p in tsf.parameters())
    with capsys.disabled():
        print(
            f"\nMViTv2-B (HiTeA, no head): {n_mvit / 1e6:.2f}M parameters; TimeSformer-B/16x8: {n_tsf / 1e6:.2f}M"
        )
    # MViTv2-B reports 51.2M with its 400-way Kinetics head (768·400 + 400 = 0.31M), i.e. 50.9M without.
    # (36.6M is MViTv1-B's count: 16 blocks [1, 2, 11, 2] and no relative positions.)
    assert abs(n_mvit - (51.2e6 - 307_600)) < 0.1e6
    # TimeSformer reports 121.4M with its Kinetics head; without the head about 121.1M (+ pos/time embeddings)
    assert abs(n_tsf - (121.4e6 - 307_600)) < 0.3e6


def test_hitea_release_keys_map_and_load_strictly():
    torch.manual_seed(0)
    model = MViT(mvit_tiny_config(out_dim=64))  # no out_proj: exactly the release's module set
    ours = model.state_dict()
    release = {f"visual_encoder.{k}": v.clone() for k, v in ours.items()}
    release["visual_encoder.blocks.0._checkpoint_wrapped_module.norm1.weight"] = release.pop(
        "visual_encoder.blocks.0.norm1.weight"
    )
    release["visual_encoder_m.cls_token"] = torch.zeros(1, 1, 16)  # the momentum copy is not selected
    release["text_encoder.embeddings.word_embeddings.weight"] = torch.zeros(3, 4)
    mapping = hitea_video_key_map(release)
    assert set(mapping.values()) == set(ours)
    assert (
        mapping["visual_encoder.blocks.0._checkpoint_wrapped_module.norm1.weight"] == "blocks.0.norm1.weight"
    )
    fresh = MViT(mvit_tiny_config(out_dim=64))
    fresh.load_state_dict({mapping[k]: release[k] for k in mapping}, strict=True)
    video = torch.randn(1, 4, 3, 32, 32)
    assert torch.allclose(fresh.eval()(video), model.eval()(video))
    momentum = hitea_video_key_map(release, prefix="visual_encoder_m.")
    assert momentum == {"visual_encoder_m.cls_token": "cls_token"}


def test_rel_pos_tables_adapted_from_another_frame_count():
    src = MViT(mvit_tiny_config(num_frames=16))  # rel_pos_t has 2·8 - 1 = 15 rows
    dst = MViT(mvit_tiny_config(num_frames=4))  # 2·2 - 1 = 3 rows
    assert src.blocks[0].attn.rel_pos_t.shape[0] == 15
    state = adapt_rel_pos_tables(src.state_dict(), dst)
    dst.load_state_dict(state, strict=True)
    assert dst.blocks[0].attn.rel_pos_t.shape[0] == 3


def test_split_fused_qkv_round_trip():
    torch.manual_seed(0)
    model = TimeSformer(timesformer_tiny_config()).eval()
    _randomise(model)
    fused = {}
    for k, v in model.state_dict().items():
        stem, _, leaf = k.rpartition(".")
        if stem.endswith(("attn.q", "attn.k", "attn.v")):
            base = stem[:-2]
            if stem.endswith(".q"):
                parts = [model.state_dict()[f"{base}.{n}.{leaf}"] for n in "qkv"]
                fused[f"{base}.qkv.{leaf}"] = torch.cat(parts, dim=0)
        else:
            fused[k] = v
    assert "blocks.0.temporal_attn.qkv.weight" in fused and "blocks.0.attn.q.weight" not in fused
    fresh = TimeSformer(timesformer_tiny_config()).eval()
    fresh.load_state_dict(split_fused_qkv(fused), strict=True)
    video = torch.randn(1, 4, 3, 32, 32)
    assert torch.allclose(fresh(video), model(video))


def test_build_video_encoder_from_config_dicts():
    mvit = build_video_encoder("mvit", {"embed_dim": 16, "depth": 4, "stage_ends": [1, 2, 3], "image_size": 32,
                                        "num_frames": 4, "out_dim": 32})  # fmt: skip
    assert isinstance(mvit, MViT) and mvit.cfg.stage_ends == (1, 2, 3)
    tsf = build_video_encoder(
        "timesformer", {"image_size": 32, "patch_size": 8, "dim": 32, "depth": 1, "num_heads": 2}
    )
    assert isinstance(tsf, TimeSformer) and tsf.out_dim == 32
    with pytest.raises(ConfigError, match="timesformer.dimm"):
        build_video_encoder("timesformer", {"dimm": 32})
    with pytest.raises(ConfigError, match="unknown video encoder 'swin'"):
        build_video_encoder("swin", {})
    with pytest.raises(ConfigError, match="stage_ends"):
        build_video_encoder("mvit", {"depth": 4, "stage_ends": [1, 2]})


def test_bad_video_shape_is_a_clear_error():
    model = TimeSformer(timesformer_tiny_config())
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.randn(2, 3, 32, 32))


def test_mvit_runs_under_bf16_autocast():
    torch.manual_seed(0)
    model = MViT(mvit_tiny_config()).eval()
    video = torch.randn(1, 4, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(video)
    assert torch.allclose(low.float(), model(video), atol=0.1)
