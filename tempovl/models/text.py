"""The text stack shared by HERO and HiTeA: the one Hugging Face BERT/RoBERTa reader and its names in our
blocks (``BERT_NAMES``), the PrefixLM split, language-model cross-entropy, and the one decoder
(:func:`beam_search`, greedy at one beam) behind HERO's TVC and HiTeA's captioning / open-ended QA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tempovl.data.packing import pad_ids
from tempovl.errors import ConfigError

BERT_NAMES = {  # Hugging Face BERT layer / embedding names -> ours (TransformerBlock, TextEmbedding)
    "attention.self.query": "attn.q",
    "attention.self.key": "attn.k",
    "attention.self.value": "attn.v",
    "attention.output.dense": "attn.proj",
    "attention.output.LayerNorm": "norm1",
    "crossattention.self.query": "cross_attn.q",
    "crossattention.self.key": "cross_attn.k",
    "crossattention.self.value": "cross_attn.v",
    "crossattention.output.dense": "cross_attn.proj",
    "crossattention.output.LayerNorm": "norm_cross",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "output.LayerNorm": "norm2",
    "word_embeddings": "word",
    "position_embeddings": "position",
    "token_type_embeddings": "token_type",
    "LayerNorm": "norm",
}


@dataclass(frozen=True)
class SpecialTokens:
    """The ids a decoder needs: sequence start (BERT's [CLS]), end ([SEP]) and padding."""

    bos: int
    eos: int
    pad: int


# the modules of one self-attention BERT layer (no cross-attention), in BERT_NAMES' spelling
BERT_SELF_LAYER = tuple(k for k in BERT_NAMES if "." in k and not k.startswith("crossattention"))


def bert_key_to_ours(key: str) -> str:
    """``attention.self.query.weight`` -> ``attn.q.weight`` (a key inside one BERT layer or embeddings)."""
    module, _, leaf = key.rpartition(".")
    return f"{BERT_NAMES.get(module, module)}.{leaf}"


def split_prefix(
    ids: torch.Tensor, mask: torch.Tensor, pad_id: int, cls_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """PrefixLM split at a random length per caption: [CLS] w_1..w_{p-1} | w_p .. [SEP].

    Returns (prefix (B, Lp), prefix_mask, target (B, Lt) = [CLS] w_p .. [SEP], target_mask); p is drawn
    uniformly from [1, n-2] for a caption of n valid tokens (at least one word is left to predict).
    """
    mask = mask.bool()
    lengths = mask.sum(dim=1).tolist()
    cuts = [int(torch.randint(1, max(1, n - 2) + 1, ()).item()) for n in lengths]
    prefixes = [ids[i, :p] for i, p in enumerate(cuts)]
    targets = [
        torch.cat([ids.new_tensor([cls_id]), ids[i, p:n]]) for i, (p, n) in enumerate(zip(cuts, lengths))
    ]
    prefix, prefix_mask = pad_ids(prefixes, pad_id)
    target, target_mask = pad_ids(targets, pad_id)
    return prefix, prefix_mask, target, target_mask


def target_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher forcing: next-token `labels` (B, L-1) (-100 = no target) -> the decoder input positions
    (B, L) bool whose output predicts a target, and those targets (N,) in the same row-major order. A
    decoder projects only these positions onto the vocabulary (``TextDecoder(..., positions=)``)."""
    keep = labels != -100
    return F.pad(keep, (0, 1)), labels[keep]


def lm_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy over labels != -100; logits (..., V), labels (...)."""
    if not (labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100
    )


def load_bert_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The embeddings and encoder layers of a local Hugging Face BERT or RoBERTa (a directory with
    ``model.safetensors`` / ``pytorch_model.bin``, or the weights file itself), keys without the ``bert.`` /
    ``roberta.`` prefix and with TF-era ``LayerNorm.gamma/beta`` renamed. The one reader behind HERO's and
    HiTeA's ``model.text_init``."""
    p = Path(path)
    files = [p] if p.is_file() else [p / "model.safetensors", p / "pytorch_model.bin"]
    found = next((f for f in files if f.is_file()), None)
    if found is None:
        raise ConfigError(f"model.text_init: no model.safetensors or pytorch_model.bin in {path}")
    if found.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(found))
    else:
        state = torch.load(found, map_location="cpu", weights_only=True)
    out = {}
    for k, v in state.items():
        for prefix in ("bert.", "roberta."):
            k = k[len(prefix) :] if k.startswith(prefix) else k
        k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if k.startswith(("embeddings.", "encoder.layer.")) and not k.endswith("position_ids"):
            out[k] = v
    if "embeddings.word_embeddings.weight" not in out:
        raise ConfigError(
            f"model.text_init: {found} is not a BERT checkpoint (no embeddings.word_embeddings)"
        )
    return out


def reorder_cache(cache: list[dict], rows: torch.Tensor) -> None:
    """Keep the cached keys/values of the hypotheses that survive a beam step (``rows`` into the batch)."""
    for layer in cache:
        for part in layer.values():
            for name, value in part.items():
                part[name] = value.index_select(0, rows)


@torch.no_grad()
def beam_search(
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, list | None, int], torch.Tensor],
    enc: torch.Tensor,
    enc_mask: torch.Tensor,
    tokens: SpecialTokens,
    prompt: list[int],
    max_len: int,
    min_len: int,
    num_beams: int,
    length_penalty: float,
    use_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one decoder: batched beam search (greedy when num_beams == 1) for HERO's TVC head and HiTeA's
    captioning / open-ended QA decoder.

    ``step(ids (N, L'), enc (N, S, D), enc_mask (N, S), cache, start) -> next-token logits (N, V)`` runs the
    decoder over the positions ``start..`` of the prefixes: all of them at the first step, then only the
    newest one, whose predecessors are in ``cache`` (a key/value cache, a list the decoder fills and this
    function reorders with the surviving beams). With ``use_cache=False`` the cache is None and every step
    re-encodes the whole prefix (``start`` 0): the reference the cache must equal.
    Sequences start with ``tokens.bos`` + prompt and end at ``tokens.eos``; ``tokens.pad`` and ``tokens.bos``
    are never generated, ``eos`` not before ``min_len`` tokens. A hypothesis's score is its summed
    log-probability divided by (generated length, eos included) ** length_penalty. Returns (ids (B, <= P +
    max_len) without bos / eos, right-padded with ``tokens.pad``; the best hypothesis' scores (B,)).
    """
    c, nb, b = tokens, num_beams, enc.shape[0]
    device = enc.device
    seqs = torch.tensor([c.bos, *prompt], device=device).repeat(b * nb, 1)  # (B*nb, 1+P)
    enc, enc_mask = enc.repeat_interleave(nb, 0), enc_mask.repeat_interleave(nb, 0)  # (B*nb, S, D)
    scores = torch.full((b, nb), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the first expansion comes from one beam only
    scores = scores.view(-1)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    cache: list | None = [] if use_cache else None
    for t in range(max_len):
        start = seqs.shape[1] - 1 if cache else 0
        logits = step(seqs[:, start:], enc, enc_mask, cache, start).float()
        logp = F.log_softmax(logits, dim=-1)  # (B*nb, V)
        logp[:, [c.pad, c.bos]] = float("-inf")
        if t < min_len:
            logp[:, c.eos] = float("-inf")
        vocab = logp.shape[-1]
        top_s, top_i = (scores[:, None] + logp).view(b, nb * vocab).topk(2 * nb, dim=1)
        new_rows, new_tokens, new_scores = [], [], []
        for i in range(b):
            kept = 0
            for s, idx in zip(top_s[i].tolist(), top_i[i].tolist()):
                beam, tok = divmod(idx, vocab)
                if s == float("-inf") or kept == nb:
                    continue
                if tok == c.eos:
                    if len(finished[i]) < nb:
                        finished[i].append((s / (t + 1) ** length_penalty, seqs[i * nb + beam, 1:].tolist()))
                    continue
                new_rows.append(i * nb + beam), new_tokens.append(tok), new_scores.append(s)
                kept += 1
            for _ in range(nb - kept):  # dead beams keep the shape
                new_rows.append(i * nb), new_tokens.append(c.pad), new_scores.append(float("-inf"))
        rows = torch.tensor(new_rows, device=device)
        if cache:
            reorder_cache(cache, rows)
        seqs = torch.cat([seqs[rows], torch.tensor(new_tokens, device=device)[:, None]], dim=1)
        scores = torch.tensor(new_scores, device=device)
        if all(len(f) >= nb for f in finished):
            break
    alive = scores.view(b, nb)
    for i in range(b):
        if not finished[i]:
            for j in range(nb):
                s = float(alive[i, j])
                if s > float("-inf"):
                    finished[i].append((s / max_len**length_penalty, seqs[i * nb + j, 1:].tolist()))
    best = [max(f, key=lambda h: h[0]) for f in finished]
    out, out_mask = pad_ids(
        [torch.tensor(t or [c.pad], dtype=torch.long, device=device) for _, t in best], c.pad
    )
    return out, torch.tensor([s for s, _ in best], device=device)
