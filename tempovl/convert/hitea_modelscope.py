"""`tempovl convert hitea-modelscope SRC DST`: the public HiTeA release (ModelScope
``damo/multi-modal_hitea_video-captioning_base_en`` / ``..._video-question-answering_base_en``) -> tempovl.

The release is mPLUG's layout (``modelscope/models/multi_modal/mplug/modeling_mplug.py``)::

    visual_encoder.*                         -> video_encoder.*   (MViTv2, see tempovl.models.mvit)
    text_encoder.embeddings.*                -> text_encoder.embeddings.{word,position,token_type,norm}
    text_encoder.encoder.layer.{i}.*         -> text_encoder.blocks.{i}.*
    fusion_encoder.encoder.layer.{s+j}.*     -> fusion.blocks.{j}.*  (s = unused leading layers)
    text_decoder.bert.embeddings.*           -> decoder.embeddings.*
    text_decoder.bert.encoder.layer.{i}.*    -> decoder.blocks.{i}.*
    text_decoder.cls.predictions.transform.{dense,LayerNorm}, .bias -> decoder.head.{dense,norm,bias}
    visual_encoder_m.*, text_encoder_m.*     -> the momentum copies video_encoder_m.*, text_encoder_m.*

Inside a layer, BERT names map as in :data:`tempovl.models.hitea.BERT_NAMES`. Dropped, by rule (never
silently): ``*.position_ids`` buffers; ``text_decoder.cls.predictions.decoder.weight`` (tied to the
decoder's word embeddings: checked equal); fusion layers below the used ones and the cross-attention of
mPLUG's connected layers (built but never run by the release); ``fusion_encoder_m.*`` and
``text_decoder_m.*`` (distillation copies tempovl does not keep). Any other source key is an error, and so
is any model key not covered, except the pre-training heads the release does not ship (VTC/VTM/MLM
projections and heads, temperatures, queues, MTRE), which keep their initial values and are listed.
Missing momentum copies start as copies of the online weights.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
import yaml

from tempovl.config import from_dict, load_config, to_dict
from tempovl.engine.checkpoint import CONFIG_FILE, MODEL_FILE, atomic_dir, save_weights
from tempovl.errors import InputError
from tempovl.models.hitea import Hitea, HiteaConfig
from tempovl.models.text import BERT_NAMES, bert_key_to_ours

log = logging.getLogger(__name__)

NOT_IN_RELEASE = ("vision_proj.", "text_proj.", "vtm_head.", "mlm_head.", "vtc.", "cme_temp", "mtre.")
NOT_IN_RELEASE_M = ("vision_proj_m.", "text_proj_m.", "video_proj")
DROPPED_PREFIXES = ("fusion_encoder_m.", "text_decoder_m.")
LAYER_RE = re.compile(r"^(?P<stack>[\w.]+?)\.layer\.(?P<i>\d+)\.(?P<rest>.+)$")


def _video_key_map(keys: list[str], prefix: str) -> dict[str, str]:
    from tempovl.models.mvit import hitea_video_key_map

    return hitea_video_key_map(keys, prefix=prefix)


def map_release_keys(
    release: dict[str, torch.Tensor], cfg: HiteaConfig, n_fusion_src: int | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Release state dict -> (our state dict, dropped release keys). Raises InputError on unknown keys.

    ``n_fusion_src`` is the number of layers the release's fusion encoder holds (its last
    ``cfg.fusion_layers`` are the used ones); by default it is read off the keys.
    """
    release = {k.removeprefix("module.").removeprefix("model."): v for k, v in release.items()}
    fusion_ids = {
        int(m.group("i"))
        for k in release
        if (m := LAYER_RE.match(k)) and m.group("stack") == "fusion_encoder.encoder"
    }
    n_fusion_src = n_fusion_src if n_fusion_src is not None else (max(fusion_ids) + 1 if fusion_ids else 0)
    start = n_fusion_src - cfg.fusion_layers
    connected = [
        cfg.fusion_stride > 0 and j > 0 and j % cfg.fusion_stride == 0 for j in range(cfg.fusion_layers)
    ]
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for prefix, ours in (("visual_encoder.", "video_encoder."), ("visual_encoder_m.", "video_encoder_m.")):
        for src, dst in _video_key_map(list(release), prefix).items():
            out[ours + dst] = release[src]
    stacks = {
        "text_encoder.encoder": "text_encoder.blocks",
        "text_encoder_m.encoder": "text_encoder_m.blocks",
        "fusion_encoder.encoder": "fusion.blocks",
        "text_decoder.bert.encoder": "decoder.blocks",
    }
    embeddings = {
        "text_encoder.embeddings.": "text_encoder.embeddings.",
        "text_encoder_m.embeddings.": "text_encoder_m.embeddings.",
        "text_decoder.bert.embeddings.": "decoder.embeddings.",
    }
    head = {
        "text_decoder.cls.predictions.transform.dense.weight": "decoder.head.dense.weight",
        "text_decoder.cls.predictions.transform.dense.bias": "decoder.head.dense.bias",
        "text_decoder.cls.predictions.transform.LayerNorm.weight": "decoder.head.norm.weight",
        "text_decoder.cls.predictions.transform.LayerNorm.bias": "decoder.head.norm.bias",
        "text_decoder.cls.predictions.bias": "decoder.head.bias",
    }
    for key, value in release.items():
        if key.startswith(("visual_encoder.", "visual_encoder_m.")):
            continue
        if key.endswith("position_ids") or key.startswith(DROPPED_PREFIXES):
            dropped.append(key)
            continue
        if key in head:
            out[head[key]] = value
            continue
        if key == "text_decoder.cls.predictions.decoder.weight":
            word = release.get("text_decoder.bert.embeddings.word_embeddings.weight")
            if word is None or not torch.equal(word, value):
                raise InputError(
                    f"{key}: the release's decoder output weights are not tied to its word embeddings"
                )
            dropped.append(key)
            continue
        emb = next((p for p in embeddings if key.startswith(p)), None)
        if emb is not None:
            out[embeddings[emb] + bert_key_to_ours(key[len(emb) :])] = value
            continue
        m = LAYER_RE.match(key)
        if m is None or m.group("stack") not in stacks:
            raise InputError(f"{key}: not a key of the public HiTeA release (unknown module)")
        i, rest = int(m.group("i")), m.group("rest")
        if rest.rpartition(".")[0] not in BERT_NAMES:
            raise InputError(f"{key}: unknown BERT sub-module {rest!r}")
        if m.group("stack") == "fusion_encoder.encoder":
            i -= start
            if i < 0 or (connected[i] and rest.startswith("crossattention.")):
                dropped.append(key)  # built but never run by the release
                continue
        out[f"{stacks[m.group('stack')]}.{i}.{bert_key_to_ours(rest)}"] = value
    return out, dropped


def load_release(src: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The release's state dict and its BERT config (``config_bert.json``; empty if absent)."""
    p = Path(src)
    weights = p / "pytorch_model.bin" if p.is_dir() else p
    if not weights.is_file():
        raise InputError(
            f"{src}: no pytorch_model.bin (expected the ModelScope model directory or the .bin/.pth)"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any unreadable file is the user's input error)
        raise InputError(f"{weights}: not a readable PyTorch checkpoint ({e})") from None
    for wrapper in ("model", "module", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    bert_cfg_path = (p if p.is_dir() else p.parent) / "config_bert.json"
    bert_cfg = json.loads(bert_cfg_path.read_text(encoding="utf-8")) if bert_cfg_path.is_file() else {}
    return state, bert_cfg


def convert(src: str | Path, dst: str | Path, preset: str | None = None) -> int:
    """Convert the release at `src` into a tempovl export at `dst` (model.safetensors + config.yaml).

    The weights are saved with module prefix ``model`` (the HiTeA tasks hold the model as ``.model``).
    """
    model_cfg = load_config(f"model/{preset or 'hitea-base'}").get("model", {})
    release, bert_cfg = load_release(src)
    if bert_cfg:  # the release's own fusion layout wins over the preset's
        fusion_layers = int(bert_cfg.get("fusion_layers", model_cfg.get("fusion_layers", 6)))
        stride = int(bert_cfg.get("stride_layer", 100))
        model_cfg.update(fusion_layers=fusion_layers, fusion_stride=stride if stride < fusion_layers else 0)
        model_cfg["text_layers"] = int(bert_cfg.get("text_encoder_layers", model_cfg.get("text_layers", 6)))
        model_cfg["decoder_layers"] = int(
            bert_cfg.get("text_decode_layers", model_cfg.get("decoder_layers", 12))
        )
    cfg = from_dict(HiteaConfig, {k: v for k, v in model_cfg.items() if k != "name"}, "model")
    cfg.text_init = None
    model = Hitea(cfg)
    n_fusion = bert_cfg.get("num_hidden_layers") if bert_cfg else None
    mapped, dropped = map_release_keys(release, cfg, n_fusion)
    state = load_mapped(model, mapped)
    with atomic_dir(dst) as tmp:
        save_weights(state, tmp / MODEL_FILE, prefix="model")
        with open(tmp / CONFIG_FILE, "w", encoding="utf-8") as f:
            yaml.safe_dump({"model": {"name": "hitea", **to_dict(cfg)}}, f, sort_keys=False)
    log.info("converted %d tensors (%d release keys dropped by rule) -> %s", len(mapped), len(dropped), dst)
    return 0


def load_mapped(model: Hitea, mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check `mapped` against the model strictly and load it; returns the model's full state dict."""
    own = model.state_dict()
    unexpected = sorted(set(mapped) - set(own))
    bad = [k for k in mapped if k in own and tuple(own[k].shape) != tuple(mapped[k].shape)]
    if unexpected or bad:
        raise InputError(
            f"release keys do not fit the model: unexpected {unexpected[:5]}, mis-shaped {bad[:5]}"
        )
    missing = sorted(set(own) - set(mapped))
    from_online = [k for k in missing if k.startswith(("video_encoder_m.", "text_encoder_m."))]
    allowed = NOT_IN_RELEASE + NOT_IN_RELEASE_M
    uncovered = [k for k in missing if k not in from_online and not k.startswith(allowed)]
    if uncovered:
        raise InputError(f"the release lacks {len(uncovered)} weights of the model, e.g. {uncovered[:5]}")
    state = dict(own)
    state.update(mapped)
    for k in from_online:  # momentum copies start equal to the online weights
        online = k.replace("_m.", ".", 1)
        state[k] = state[online].clone()
    model.load_state_dict(state, strict=True)
    if missing:
        log.info(
            "kept at initial values (not in the release): %d tensors, e.g. %s", len(missing), missing[:3]
        )
    return model.state_dict()
