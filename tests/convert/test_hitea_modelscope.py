"""The HiTeA ModelScope converter maps a state dict with the release's key names, strictly."""

import json

import pytest
import torch

from tempovl.convert.hitea_modelscope import convert, map_release_keys
from tempovl.engine.checkpoint import load_weights
from tempovl.errors import InputError
from tempovl.models.text import BERT_NAMES

pytest.importorskip("tempovl.models.mvit")
OURS_TO_BERT = {v: k for k, v in BERT_NAMES.items()}


def bert_name(key: str) -> str:
    module, _, leaf = key.rpartition(".")
    return f"{OURS_TO_BERT[module]}.{leaf}"


def release_from(model_state: dict, fusion_stride: int, n_fusion: int, extra_fusion: int = 2) -> dict:
    """Rename our hitea-tiny state dict into the public release's names (mPLUG layout) + its extras."""
    rel = {}
    for key, value in model_state.items():
        head, _, rest = key.partition(".")
        if head in ("video_encoder", "video_encoder_m"):
            rel[("visual_encoder." if head == "video_encoder" else "visual_encoder_m.") + rest] = value
        elif head in ("text_encoder", "text_encoder_m", "decoder", "fusion"):
            part, _, rest2 = rest.partition(".")
            if part == "embeddings":
                src = {
                    "text_encoder": "text_encoder",
                    "text_encoder_m": "text_encoder_m",
                    "decoder": "text_decoder.bert",
                }[head]
                rel[f"{src}.embeddings.{bert_name(rest2)}"] = value
            elif part == "blocks":
                i, _, leaf = rest2.partition(".")
                stack = {"text_encoder": "text_encoder.encoder", "text_encoder_m": "text_encoder_m.encoder",
                         "decoder": "text_decoder.bert.encoder", "fusion": "fusion_encoder.encoder"}[head]  # fmt: skip
                i = int(i) + (extra_fusion if head == "fusion" else 0)
                rel[f"{stack}.layer.{i}.{bert_name(leaf)}"] = value
            elif part == "head":
                names = {"dense.weight": "transform.dense.weight", "dense.bias": "transform.dense.bias",
                         "norm.weight": "transform.LayerNorm.weight", "norm.bias": "transform.LayerNorm.bias",
                         "bias": "bias"}  # fmt: skip
                rel[f"text_decoder.cls.predictions.{names[rest2]}"] = value
    rel["text_decoder.cls.predictions.decoder.weight"] = rel[
        "text_decoder.bert.embeddings.word_embeddings.weight"
    ]
    rel["text_encoder.embeddings.position_ids"] = torch.arange(64)[None]
    d = 128
    for layer in range(extra_fusion):  # leading fusion layers the release builds but never runs
        rel[f"fusion_encoder.encoder.layer.{layer}.attention.self.query.weight"] = torch.zeros(d, d)
    for j in range(n_fusion):  # the connected layers' unused cross-attention
        if fusion_stride and j and j % fusion_stride == 0:
            rel[f"fusion_encoder.encoder.layer.{j + extra_fusion}.crossattention.self.query.weight"] = (
                torch.zeros(d, d)
            )
    rel["fusion_encoder_m.encoder.layer.0.attention.self.query.weight"] = torch.zeros(d, d)
    return {"model": rel}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from tempovl.config import load_config
    from tempovl.registry import build_model

    torch.manual_seed(3)
    model = build_model(load_config("model/hitea-tiny")["model"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    src = tmp_path_factory.mktemp("hitea_release")
    torch.save(release_from(state, fusion_stride=1, n_fusion=2), src / "pytorch_model.bin")
    (src / "config_bert.json").write_text(
        json.dumps(
            {
                "num_hidden_layers": 4,
                "text_encoder_layers": 2,
                "fusion_layers": 2,
                "stride_layer": 1,
                "text_decode_layers": 2,
            }
        )
    )
    return src, state


def test_convert_maps_every_release_weight(release, tmp_path):
    src, state = release
    assert convert(src, tmp_path / "out", preset="hitea-tiny") == 0
    weights, prefix = load_weights(tmp_path / "out" / "model.safetensors")
    assert prefix == "model"
    for key, value in state.items():
        if key.startswith(("vision_proj", "text_proj", "vtm_head", "mlm_head", "vtc.", "cme_temp", "mtre.")):
            continue  # pre-training heads: not in the release
        assert torch.equal(weights[key], value), key
    assert (tmp_path / "out" / "config.yaml").read_text().startswith("model:")


def test_unknown_release_key_is_an_error_naming_it(release, tmp_path):
    src, _ = release
    rel = torch.load(src / "pytorch_model.bin", weights_only=True)["model"]
    from tempovl.config import from_dict, load_config
    from tempovl.models.hitea import HiteaConfig

    cfg = from_dict(
        HiteaConfig, {k: v for k, v in load_config("model/hitea-tiny")["model"].items() if k != "name"}
    )
    mapped, dropped = map_release_keys(rel, cfg, 4)
    assert (
        "text_decoder.cls.predictions.decoder.weight" in dropped
        and "fusion_encoder_m.encoder.layer.0.attention.self.query.weight" in dropped
    )
    with pytest.raises(InputError, match="text_encoder.pooler.dense.weight"):
        map_release_keys({**rel, "text_encoder.pooler.dense.weight": torch.zeros(1)}, cfg, 4)
    untied = {
        **rel,
        "text_decoder.cls.predictions.decoder.weight": torch.zeros_like(
            rel["text_decoder.cls.predictions.decoder.weight"]
        ),
    }
    with pytest.raises(InputError, match="tied"):
        map_release_keys(untied, cfg, 4)


def test_missing_release_weights_are_an_error(release, tmp_path):
    src, _ = release
    rel = torch.load(src / "pytorch_model.bin", weights_only=True)["model"]
    del rel["text_encoder.encoder.layer.1.output.dense.weight"]
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save(rel, bad / "pytorch_model.bin")
    (bad / "config_bert.json").write_text((src / "config_bert.json").read_text())
    with pytest.raises(InputError, match="text_encoder.blocks.1.mlp.fc2.weight"):
        convert(bad, tmp_path / "out", preset="hitea-tiny")
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="pytorch_model.bin"):
        convert(tmp_path / "nowhere", tmp_path / "out2", preset="hitea-tiny")
