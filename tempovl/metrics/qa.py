"""Question-answering metrics: multiple-choice accuracy (TVQA, How2QA, VIOLIN, NExT-QA) overall and
per question type, and exact-match accuracy for open-ended answers. Accuracies are percentages."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

from tempovl.errors import InputError


def _check_index(value, n_choices: int | None, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{where}: answer index must be an integer, got {value!r}")
    if value < 0 or (n_choices is not None and value >= n_choices):
        bound = f"[0, {n_choices})" if n_choices is not None else ">= 0"
        raise InputError(f"{where}: answer index {value} is out of range {bound}")
    return int(value)


def qa_accuracy(
    predictions: Sequence[int],
    answers: Sequence[int],
    num_choices: int | Sequence[int] | None = None,
    question_types: Sequence[str] | None = None,
    ids: Sequence | None = None,
) -> dict:
    """Multiple-choice accuracy: {"accuracy", "n", "per_type": {type: {"accuracy", "n"}}}, and
    "chance_accuracy" (the mean of 1 / num_choices) when num_choices is given.

    num_choices: the number of candidates (one for all, or one per question); when given, every
    predicted and true index is checked to lie in [0, num_choices). ids name the questions in errors.
    """
    n = len(answers)
    if len(predictions) != n:
        raise InputError(f"QA: {len(predictions)} predictions for {n} questions")
    if n == 0:
        raise InputError("QA: no questions to score")
    if num_choices is None or isinstance(num_choices, int | np.integer):
        per_q_choices = [num_choices] * n
    else:
        per_q_choices = list(num_choices)
        if len(per_q_choices) != n:
            raise InputError(f"QA: {len(per_q_choices)} num_choices entries for {n} questions")
    if question_types is not None and len(question_types) != n:
        raise InputError(f"QA: {len(question_types)} question types for {n} questions")
    names = list(ids) if ids is not None else list(range(n))
    correct = np.zeros(n, dtype=bool)
    for i in range(n):
        truth = _check_index(answers[i], per_q_choices[i], f"question {names[i]!r} (ground truth)")
        pred = _check_index(predictions[i], per_q_choices[i], f"question {names[i]!r} (prediction)")
        correct[i] = pred == truth
    out: dict = {"accuracy": float(100.0 * correct.mean()), "n": n}
    if all(c is not None for c in per_q_choices):
        out["chance_accuracy"] = float(100.0 * np.mean([1.0 / c for c in per_q_choices]))
    if question_types is not None:
        types = np.asarray([str(t) for t in question_types])
        out["per_type"] = {
            t: {"accuracy": float(100.0 * correct[types == t].mean()), "n": int(np.sum(types == t))}
            for t in sorted(set(types.tolist()))
        }
    return out


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse spaces (SQuAD-style)."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match_accuracy(predictions: Sequence[str], answers: Sequence[str | Sequence[str]]) -> dict:
    """Open-ended QA: share (percent) of predictions equal to a reference answer after normalize_answer.

    Each reference may be one string or a list of accepted strings.
    """
    if len(predictions) != len(answers):
        raise InputError(f"open-ended QA: {len(predictions)} predictions for {len(answers)} questions")
    if not answers:
        raise InputError("open-ended QA: no questions to score")
    hits = []
    for pred, ref in zip(predictions, answers):
        refs = [ref] if isinstance(ref, str) else list(ref)
        hits.append(normalize_answer(pred) in {normalize_answer(r) for r in refs})
    return {"accuracy": float(100.0 * np.mean(hits)), "n": len(hits)}
