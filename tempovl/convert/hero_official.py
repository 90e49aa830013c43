"""Convert a checkpoint of the official HERO code (linjieli222/HERO, ``HeroForPretraining``) to tempovl.

The official state dict names modules ``v_encoder.f_encoder...`` (Cross-modal Transformer, its
embeddings and MLM head), ``v_encoder.c_encoder...`` (Temporal Transformer), ``v_encoder.frame_transform``,
``v_encoder.feat_regress`` (MFFR/MNCE head), ``v_encoder.fom_output``, ``q_feat_attn`` (query encoder) and
``video_query_linear`` / ``video_st_predictor`` / ``video_ed_predictor`` (VSM). Every key is mapped by
the table below; the few that no HERO computation reads are listed in ``UNUSED`` and dropped; anything
else, or a key of ours left unfilled, is an error. The output directory holds ``model.safetensors``
(keys ``model.<ours>``, the engine's checkpoint layout of a Task whose ``model`` is Hero) and
``config.yaml`` (the ``model:`` section of the preset).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import yaml

from tempovl.config import load_config
from tempovl.errors import InputError
from tempovl.io import atomic_open, atomic_path

_LAYER = [
    (r"attention\.self\.query", "attn.q"),
    (r"attention\.self\.key", "attn.k"),
    (r"attention\.self\.value", "attn.v"),
    (r"attention\.output\.dense", "attn.proj"),
    (r"attention\.output\.LayerNorm", "norm1"),
    (r"intermediate\.dense", "mlp.fc1"),
    (r"output\.dense", "mlp.fc2"),
    (r"output\.LayerNorm", "norm2"),
]

# official prefix (regex) -> ours; the parameter suffix (.weight/.bias) is kept
RULES: list[tuple[str, str]] = [
    (r"v_encoder\.f_encoder\.embeddings\.word_embeddings", "text_embed.word"),
    (r"v_encoder\.f_encoder\.embeddings\.position_embeddings", "text_embed.position"),
    (r"v_encoder\.f_encoder\.embeddings\.token_type_embeddings", "text_embed.token_type"),
    (r"v_encoder\.f_encoder\.embeddings\.LayerNorm", "text_embed.norm"),
    (r"v_encoder\.f_encoder\.img_embeddings\.img_linear", "frame_embed.proj"),
    (r"v_encoder\.f_encoder\.img_embeddings\.img_LayerNorm", "frame_embed.in_norm"),
    (r"v_encoder\.f_encoder\.img_embeddings\.position_embeddings", "frame_embed.position"),
    (r"v_encoder\.f_encoder\.img_embeddings\.mask_embedding", "frame_embed.mask_embedding"),
    (r"v_encoder\.f_encoder\.img_embeddings\.LayerNorm", "frame_embed.norm"),
    *[(rf"v_encoder\.f_encoder\.encoder\.layer\.(\d+)\.{a}", rf"cross.blocks.\1.{b}") for a, b in _LAYER],
    (r"v_encoder\.f_encoder\.lm_head\.dense", "mlm_head.dense"),
    (r"v_encoder\.f_encoder\.lm_head\.LayerNorm", "mlm_head.norm"),
    (r"v_encoder\.f_encoder\.lm_head\.bias", "mlm_head.bias"),
    (r"v_encoder\.frame_transform\.LayerNorm", "frame_transform.norm"),
    (r"v_encoder\.frame_transform\.net\.1", "frame_transform.proj"),
    (r"v_encoder\.mask_embedding", "frame_mask_embedding"),
    (r"v_encoder\.c_encoder\.embeddings\.position_embeddings", "temporal_embed.position"),
    (r"v_encoder\.c_encoder\.embeddings\.LayerNorm", "temporal_embed.norm"),
    *[(rf"v_encoder\.c_encoder\.encoder\.layer\.(\d+)\.{a}", rf"temporal.blocks.\1.{b}") for a, b in _LAYER],
    (r"v_encoder\.feat_regress\.net\.0", "mffr_head.fc1"),
    (r"v_encoder\.feat_regress\.net\.2", "mffr_head.norm"),
    (r"v_encoder\.feat_regress\.net\.3", "mffr_head.fc2"),
    (r"v_encoder\.fom_output\.linear_1", "fom_head.fc1"),
    (r"v_encoder\.fom_output\.LayerNorm", "fom_head.norm"),
    (r"v_encoder\.fom_output\.linear_2", "fom_head.fc2"),
    (r"q_feat_attn\.query_input_proj\.LayerNorm", "query_encoder.input_norm"),
    (r"q_feat_attn\.query_input_proj\.net\.1", "query_encoder.input_proj"),
    (r"q_feat_attn\.query_pos_embed\.position_embeddings", "query_encoder.embed.position"),
    (r"q_feat_attn\.query_pos_embed\.LayerNorm", "query_encoder.embed.norm"),
    (r"q_feat_attn\.query_self_attention\.self\.query", "query_encoder.attn.q"),
    (r"q_feat_attn\.query_self_attention\.self\.key", "query_encoder.attn.k"),
    (r"q_feat_attn\.query_self_attention\.self\.value", "query_encoder.attn.v"),
    (r"q_feat_attn\.query_self_attention\.output\.dense", "query_encoder.attn.proj"),
    (r"q_feat_attn\.query_self_attention\.output\.LayerNorm", "query_encoder.attn_norm"),
    (r"q_feat_attn\.modular_vector_mapping", "query_encoder.pool"),
    (r"video_query_linear", "vsm_query_proj"),
    (r"video_st_predictor", "vsm_start"),
    (r"video_ed_predictor", "vsm_end"),
]

# keys that no HERO computation reads: the BERT poolers (never used by any HERO task), the zero
# buffers used to pad row counts to multiples of 8, and the MLM decoder (tied to the word embeddings)
UNUSED = re.compile(
    r"v_encoder\.(f_encoder|c_encoder)\.pooler\.dense\.(weight|bias)"
    r"|v_encoder\.(f_encoder\.)?pad"
    r"|v_encoder\.f_encoder\.lm_head\.decoder\.weight"
)


def map_key(key: str) -> str | None:
    """Official key -> our key; None for the keys in ``UNUSED``; InputError for an unknown key."""
    if UNUSED.fullmatch(key):
        return None
    key = key.replace(".gamma", ".weight").replace(".beta", ".bias")
    for pattern, ours in RULES:
        m = re.fullmatch(rf"{pattern}(\.weight|\.bias)?", key)
        if m:
            return m.expand(ours) + (m.group(m.lastindex) if m.lastindex and m.group(m.lastindex) else "")
    raise InputError(
        f"official HERO checkpoint: unexpected key {key!r} (not a HeroForPretraining checkpoint?)"
    )


def convert_state_dict(official: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map an official state dict onto ``model``'s keys, strictly (shapes checked, nothing left unfilled)."""
    official = {k.removeprefix("module."): v for k, v in official.items()}
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in official.items():
        target = map_key(key)
        if target is None:
            continue
        if target not in ours:
            raise InputError(
                f"official key {key!r} -> {target!r}: the model has no such parameter (wrong preset?)"
            )
        if tuple(value.shape) != tuple(ours[target].shape):
            raise InputError(
                f"official key {key!r}: shape {tuple(value.shape)} but {target!r} is {tuple(ours[target].shape)}"
                " (wrong preset, e.g. frame_dim or layer count?)"
            )
        out[target] = value.detach().to(ours[target].dtype).contiguous()
    missing = sorted(set(ours) - set(out))
    if missing:
        raise InputError(f"official HERO checkpoint lacks {len(missing)} tensors, e.g. {missing[:5]}")
    decoder = official.get("v_encoder.f_encoder.lm_head.decoder.weight")
    if decoder is not None and not torch.equal(
        decoder, official["v_encoder.f_encoder.embeddings.word_embeddings.weight"]
    ):
        raise InputError(
            "official checkpoint: lm_head.decoder.weight differs from the word embeddings (not tied)"
        )
    return out


def _load(src: Path) -> dict[str, torch.Tensor]:
    if not src.exists():
        raise InputError(f"{src}: no such checkpoint")
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file
        raise InputError(f"{src}: cannot read as a PyTorch checkpoint: {e}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{src}: not a state dict of tensors")
    return state


def convert(src: str | Path, dst: str | Path, preset: str | None = None) -> int:
    """Convert ``src`` (official ``.pt``) into directory ``dst`` for preset (default ``hero-base``)."""
    from safetensors.torch import save_file

    from tempovl.registry import build_model

    name = preset or "hero-base"
    model_cfg = load_config(name if "/" in name or name.endswith((".yaml", ".yml")) else f"model/{name}")[
        "model"
    ]
    with torch.device("meta"):
        model = build_model(model_cfg)
    state = convert_state_dict(_load(Path(src)), model)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst / "model.safetensors") as tmp:
        save_file({f"model.{k}": v for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    with atomic_open(dst / "config.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump({"model": model_cfg}, f, sort_keys=False)
    print(f"converted {len(state)} tensors from {src} into {dst}")
    return 0
