"""Captioning metrics with the values of the standard COCO caption evaluation (pycocoevalcap).

Same pipeline as coco-caption's `COCOEvalCap.evaluate`: references and candidates are tokenised
separately by the Stanford PTBTokenizer (Java; lower-cased, punctuation removed), then scored by
Bleu(4) (corpus BLEU, "closest" reference length), Meteor 1.5 (Java), Rouge (ROUGE-L, beta 1.2)
and Cider. pycocoevalcap has no separate CiderD class: its `Cider` *is* the CIDEr-D of the COCO
caption server (Gaussian length penalty sigma = 6, candidate n-gram counts clipped by the
reference's, x10; document frequencies from the evaluated references), which is what papers
report as "CIDEr-D" (HERO's TVC numbers included). Scores are fractions as coco-caption gives them
(BLEU-4 of identical captions = 1.0); multiply by 100 for paper-style tables.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Mapping, Sequence

from tempovl.errors import InputError

CAPTION_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")


def _require_java() -> None:
    if shutil.which("java") is None:
        raise InputError(
            "caption metrics need a Java runtime on PATH (the PTB tokenizer and METEOR 1.5 run in Java); "
            "install one, e.g. `apt-get install default-jre-headless`"
        )


def _validate(gts: Mapping, res: Mapping) -> None:
    if not res:
        raise InputError("caption metrics: no predicted captions")
    missing = [k for k in res if k not in gts]
    if missing:
        raise InputError(f"caption metrics: predictions for ids without references: {missing[:10]}")
    unscored = [k for k in gts if k not in res]
    if unscored:
        raise InputError(f"caption metrics: references without a predicted caption: {unscored[:10]}")
    for k, refs in gts.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence) or not refs:
            raise InputError(f"caption metrics: id {k!r}: references must be a non-empty list of strings")
        if not all(isinstance(r, str) for r in refs):
            raise InputError(f"caption metrics: id {k!r}: every reference must be a string")
    for k, cap in res.items():
        if not isinstance(cap, str):
            raise InputError(f"caption metrics: id {k!r}: the prediction must be one string, got {cap!r}")


def caption_scores(
    gts: Mapping[str, Sequence[str]], res: Mapping[str, str], metrics: Sequence[str] = CAPTION_METRICS
) -> dict[str, float]:
    """{"BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"} of predicted captions `res` against references `gts`.

    Both are keyed by the same ids (every id needs exactly one prediction and >= 1 reference).
    `metrics` may select a subset (e.g. without METEOR to skip its Java start-up).
    """
    unknown = [m for m in metrics if m not in CAPTION_METRICS]
    if unknown:
        raise InputError(f"caption metrics: unknown metric(s) {unknown}; choose from {CAPTION_METRICS}")
    _validate(gts, res)
    _require_java()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # string ids: the tokenizer and the scorers only need hashable keys, and the order is kept
    keys = [str(k) for k in res]
    tokenizer = PTBTokenizer()
    try:
        gts_tok = tokenizer.tokenize({str(k): [{"caption": c} for c in gts[k]] for k in res})
        res_tok = tokenizer.tokenize({str(k): [{"caption": res[k]}] for k in res})
    except PermissionError as e:
        raise InputError(
            f"caption metrics: the PTB tokenizer could not write its temporary file ({e})"
        ) from None
    if set(gts_tok) != set(keys) or set(res_tok) != set(keys):
        raise InputError(
            "caption metrics: the PTB tokenizer returned a different set of ids (newlines in captions?)"
        )
    gts_tok = {k: gts_tok[k] for k in keys}
    res_tok = {k: res_tok[k] for k in keys}

    out: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its n-gram statistics
        if "BLEU-4" in metrics:
            out["BLEU-4"] = float(Bleu(4).compute_score(gts_tok, res_tok)[0][3])
        if "METEOR" in metrics:
            out["METEOR"] = float(Meteor().compute_score(gts_tok, res_tok)[0])
        if "ROUGE-L" in metrics:
            out["ROUGE-L"] = float(Rouge().compute_score(gts_tok, res_tok)[0])
        if "CIDEr-D" in metrics:
            out["CIDEr-D"] = float(Cider().compute_score(gts_tok, res_tok)[0])
    return out
