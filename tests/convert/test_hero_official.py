"""Official HERO checkpoints: an official-layout state dict converts strictly, and the converted model
matches a reference forward written here from the official equations with the official key names."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from tempovl.convert.hero_official import convert, convert_state_dict
from tempovl.data.packing import pack_clips
from tempovl.errors import InputError
from tempovl.registry import build_model

D, FD, V, HEADS, NC, NT = 32, 12, 64, 4, 2, 1
CFG = dict(
    name="hero",
    vocab_size=V,
    text_vocab_size=60,
    pad_id=1,
    hidden=D,
    num_heads=HEADS,
    mlp_hidden=64,
    cross_layers=NC,
    temporal_layers=NT,
    frame_dim=FD,
    max_text_positions=40,
    max_frame_positions=10,
    max_temporal_positions=20,
    max_clip_len=10,
    dropout=0.0,
    attn_dropout=0.0,
)


def _bert_layer_shapes(prefix: str) -> dict[str, tuple]:
    s = {}
    for name in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
    ):
        s[f"{prefix}{name}.weight"], s[f"{prefix}{name}.bias"] = (D, D), (D,)
    s[f"{prefix}intermediate.dense.weight"], s[f"{prefix}intermediate.dense.bias"] = (64, D), (64,)
    s[f"{prefix}output.dense.weight"], s[f"{prefix}output.dense.bias"] = (D, 64), (D,)
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
        s[f"{prefix}{name}.weight"], s[f"{prefix}{name}.bias"] = (D,), (D,)
    return s


def official_shapes() -> dict[str, tuple]:
    """Key -> shape of ``HeroForPretraining.state_dict()`` (read off the official modules)."""
    f, v = "v_encoder.f_encoder.", "v_encoder."
    s: dict[str, tuple] = {
        f + "embeddings.word_embeddings.weight": (V, D),
        f + "embeddings.position_embeddings.weight": (40, D),
        f + "embeddings.token_type_embeddings.weight": (2, D),
        f + "img_embeddings.img_linear.weight": (D, FD),
        f + "img_embeddings.img_linear.bias": (D,),
        f + "img_embeddings.img_LayerNorm.weight": (FD,),
        f + "img_embeddings.img_LayerNorm.bias": (FD,),
        f + "img_embeddings.position_embeddings.weight": (10, D),
        f + "img_embeddings.mask_embedding.weight": (2, FD),
        f + "pooler.dense.weight": (D, D),
        f + "pooler.dense.bias": (D,),
        f + "lm_head.dense.weight": (D, D),
        f + "lm_head.dense.bias": (D,),
        f + "lm_head.bias": (V,),
        f + "pad": (8, D),
        v + "frame_transform.LayerNorm.weight": (FD,),
        v + "frame_transform.LayerNorm.bias": (FD,),
        v + "frame_transform.net.1.weight": (D, FD),
        v + "frame_transform.net.1.bias": (D,),
        v + "c_encoder.embeddings.position_embeddings.weight": (20, D),
        v + "c_encoder.pooler.dense.weight": (D, D),
        v + "c_encoder.pooler.dense.bias": (D,),
        v + "feat_regress.net.0.weight": (D, D),
        v + "feat_regress.net.0.bias": (D,),
        v + "feat_regress.net.3.weight": (FD, D),
        v + "feat_regress.net.3.bias": (FD,),
        v + "mask_embedding.weight": (2, FD),
        v + "fom_output.linear_1.weight": (2 * D, D),
        v + "fom_output.linear_1.bias": (2 * D,),
        v + "fom_output.LayerNorm.weight": (2 * D,),
        v + "fom_output.LayerNorm.bias": (2 * D,),
        v + "fom_output.linear_2.weight": (10, 2 * D),
        v + "fom_output.linear_2.bias": (10,),
        v + "pad": (8, D),
        "q_feat_attn.query_input_proj.net.1.weight": (D, D),
        "q_feat_attn.query_input_proj.net.1.bias": (D,),
        "q_feat_attn.query_pos_embed.position_embeddings.weight": (40, D),
        "q_feat_attn.modular_vector_mapping.weight": (1, D),
        "video_query_linear.weight": (D, D),
        "video_query_linear.bias": (D,),
        "video_st_predictor.weight": (1, 1, 5),
        "video_ed_predictor.weight": (1, 1, 5),
    }
    for ln in (
        f + "embeddings.LayerNorm",
        f + "img_embeddings.LayerNorm",
        f + "lm_head.LayerNorm",
        v + "c_encoder.embeddings.LayerNorm",
        v + "feat_regress.net.2",
        "q_feat_attn.query_input_proj.LayerNorm",
        "q_feat_attn.query_pos_embed.LayerNorm",
    ):
        s[ln + ".weight"], s[ln + ".bias"] = (D,), (D,)
    for i in range(NC):
        s.update(_bert_layer_shapes(f"{f}encoder.layer.{i}."))
    for i in range(NT):
        s.update(_bert_layer_shapes(f"{v}c_encoder.encoder.layer.{i}."))
    qa = "q_feat_attn.query_self_attention."
    for name in ("self.query", "self.key", "self.value", "output.dense"):
        s[f"{qa}{name}.weight"], s[f"{qa}{name}.bias"] = (D, D), (D,)
    s[f"{qa}output.LayerNorm.weight"], s[f"{qa}output.LayerNorm.bias"] = (D,), (D,)
    return s


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_shapes().items():
        t = torch.randn(shape, generator=g) * 0.3
        if "LayerNorm" in k and k.endswith("weight") or k.endswith("feat_regress.net.2.weight"):
            t = 1.0 + t
        sd[k] = torch.zeros(shape) if k.endswith(".pad") else t
    sd["v_encoder.f_encoder.lm_head.decoder.weight"] = sd[
        "v_encoder.f_encoder.embeddings.word_embeddings.weight"
    ]
    return sd


# -------------------------------------------------------- reference forward from the official code


def lin(sd, p, x):
    return F.linear(x, sd[p + ".weight"], sd.get(p + ".bias"))


def ln(sd, p, x, eps):
    return F.layer_norm(x, (x.shape[-1],), sd[p + ".weight"], sd[p + ".bias"], eps)


def gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def self_attention(sd, p, x, mask=None):
    """BertAttention with keys ``p.self.*`` / ``p.output.*``; x (L, D)."""
    L, dh = x.shape[0], D // HEADS
    q, k, v = (
        lin(sd, f"{p}.self.{n}", x).view(L, HEADS, dh).transpose(0, 1) for n in ("query", "key", "value")
    )
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    if mask is not None:
        scores = scores + (1.0 - mask.float()) * -10000.0
    ctx = (scores.softmax(-1) @ v).transpose(0, 1).reshape(L, D)
    return ln(sd, f"{p}.output.LayerNorm", lin(sd, f"{p}.output.dense", ctx) + x, 1e-12)


def bert_layer(sd, p, x, mask=None):
    sa = {
        k.replace(f"{p}.attention.", f"{p}.att."): v for k, v in sd.items() if k.startswith(f"{p}.attention.")
    }
    a = self_attention(sa, f"{p}.att", x, mask)
    h = gelu(lin(sd, f"{p}.intermediate.dense", a))
    return ln(sd, f"{p}.output.LayerNorm", lin(sd, f"{p}.output.dense", h) + a, 1e-12)


def reference_clip(sd, groups, feats):
    """One clip (no padding): per-sentence cross-modal pass, frame_transform residual, temporal pass."""
    f = "v_encoder.f_encoder."
    type1 = sd[f + "embeddings.token_type_embeddings.weight"][1]
    matched = torch.zeros(feats.shape[0], D)
    for tokens, frames in groups:
        img = lin(
            sd,
            f + "img_embeddings.img_linear",
            ln(sd, f + "img_embeddings.img_LayerNorm", feats[frames], 1e-5),
        )
        img = img + sd[f + "img_embeddings.position_embeddings.weight"][: len(frames)] + type1
        img = ln(sd, f + "img_embeddings.LayerNorm", img, 1e-5)
        ids = torch.tensor(tokens)
        txt = (
            sd[f + "embeddings.word_embeddings.weight"][ids]
            + sd[f + "embeddings.position_embeddings.weight"][: len(tokens)]
        )
        txt = ln(sd, f + "embeddings.LayerNorm", txt + type1, 1e-5)
        x = torch.cat([img, txt])
        for i in range(NC):
            x = bert_layer(sd, f"{f}encoder.layer.{i}", x)
        matched[frames] += x[: len(frames)]
    v = F.relu(
        lin(sd, "v_encoder.frame_transform.net.1", ln(sd, "v_encoder.frame_transform.LayerNorm", feats, 1e-5))
    )
    c = v + matched + sd["v_encoder.c_encoder.embeddings.position_embeddings.weight"][: feats.shape[0]]
    c = ln(sd, "v_encoder.c_encoder.embeddings.LayerNorm", c, 1e-5)
    for i in range(NT):
        c = bert_layer(sd, f"v_encoder.c_encoder.encoder.layer.{i}", c)
    return c


def reference_query(sd, tokens):
    f = "v_encoder.f_encoder."
    ids = torch.tensor(tokens)
    x = (
        sd[f + "embeddings.word_embeddings.weight"][ids]
        + sd[f + "embeddings.position_embeddings.weight"][: len(tokens)]
    )
    x = ln(sd, f + "embeddings.LayerNorm", x + sd[f + "embeddings.token_type_embeddings.weight"][1], 1e-5)
    for i in range(NC):
        x = bert_layer(sd, f"{f}encoder.layer.{i}", x)
    q = F.relu(
        lin(
            sd,
            "q_feat_attn.query_input_proj.net.1",
            ln(sd, "q_feat_attn.query_input_proj.LayerNorm", x, 1e-5),
        )
    )
    q = ln(
        sd,
        "q_feat_attn.query_pos_embed.LayerNorm",
        q + sd["q_feat_attn.query_pos_embed.position_embeddings.weight"][: len(tokens)],
        1e-5,
    )
    q = self_attention(sd, "q_feat_attn.query_self_attention", q)
    w = lin(sd, "q_feat_attn.modular_vector_mapping", q).squeeze(-1).softmax(0)
    return w @ q


GROUPS = [([2, 10, 11, 12], [0, 1]), ([2, 13], [2]), ([2], [3, 4, 5])]


def converted_model(tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump({"model": CFG}))
    src = tmp_path / "official.pt"
    torch.save(official_state(), src)
    convert(src, tmp_path / "out", preset=str(preset))
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(k.startswith("model.") for k in state)
    cfg = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["model"]
    assert cfg == CFG
    model = build_model(cfg).eval()
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()}, strict=True)
    return model


def test_converted_model_matches_the_official_equations(tmp_path):
    model = converted_model(tmp_path)
    sd = official_state()
    torch.manual_seed(0)
    feats = torch.randn(6, FD)
    batch = pack_clips([GROUPS], [6], max_len=8, pad_id=1)
    batch.update(frame_feats=feats[None], frame_mask=torch.ones(1, 6, dtype=torch.bool))
    with torch.no_grad():
        out = model.encode(batch)
        ref = reference_clip(sd, GROUPS, feats)
        torch.testing.assert_close(out["frame_temporal"][0], ref, atol=1e-4, rtol=1e-4)
        q = model.encode_query(torch.tensor([[2, 20, 21, 22]]), torch.ones(1, 4, dtype=torch.bool))
        q_ref = reference_query(sd, [2, 20, 21, 22])
        torch.testing.assert_close(q[0], q_ref, atol=1e-4, rtol=1e-4)
        st, _ = model.vsm_local_logits(q, out["frame_temporal"], batch["frame_mask"])
        sim = lin(sd, "video_query_linear", q_ref) @ ref.t()
        st_ref = F.conv1d(sim[None, None], sd["video_st_predictor.weight"], padding=2)[0, 0]
        torch.testing.assert_close(st[0], st_ref, atol=1e-4, rtol=1e-4)
        fom = model.fom_head(out["frame_temporal"])[0]
        h = ln(
            sd, "v_encoder.fom_output.LayerNorm", gelu(lin(sd, "v_encoder.fom_output.linear_1", ref)), 1e-5
        )
        torch.testing.assert_close(fom, lin(sd, "v_encoder.fom_output.linear_2", h), atol=1e-4, rtol=1e-4)
        x = torch.randn(3, D)
        labels = torch.full((1, 3), 5)
        mlm = model.mlm_logits(x[None], labels)
        hm = ln(
            sd,
            "v_encoder.f_encoder.lm_head.LayerNorm",
            gelu(lin(sd, "v_encoder.f_encoder.lm_head.dense", x)),
            1e-5,
        )
        word = sd["v_encoder.f_encoder.embeddings.word_embeddings.weight"]
        mlm_ref = (hm @ word.t() + sd["v_encoder.f_encoder.lm_head.bias"])[:, :60]  # padded vocab rows cut
        torch.testing.assert_close(mlm, mlm_ref, atol=1e-4, rtol=1e-4)


def test_unknown_and_missing_keys_are_named(tmp_path):
    model = build_model(CFG)
    sd = official_state()
    bad = dict(sd, **{"v_encoder.vcmr_head.weight": torch.zeros(1)})
    with pytest.raises(InputError, match="v_encoder.vcmr_head.weight"):
        convert_state_dict(bad, model)
    partial = {k: v for k, v in sd.items() if not k.startswith("q_feat_attn.")}
    with pytest.raises(InputError, match="lacks .* tensors.*query_encoder"):
        convert_state_dict(partial, model)
    wrong = dict(sd, **{"v_encoder.frame_transform.net.1.weight": torch.zeros(D, FD + 1)})
    with pytest.raises(InputError, match="frame_transform.net.1.weight.*shape"):
        convert_state_dict(wrong, model)
    (tmp_path / "torn.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="torn.pt"):
        convert(tmp_path / "torn.pt", tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()
