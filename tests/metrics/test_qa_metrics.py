"""QA accuracy, per question type, answer-index validation, and open-ended exact match."""

import pytest

from tempovl.errors import InputError
from tempovl.metrics import exact_match_accuracy, normalize_answer, qa_accuracy


def test_accuracy_overall_and_per_type():
    m = qa_accuracy([0, 1, 2, 3], [0, 1, 0, 3], num_choices=5, question_types=["what", "why", "what", "why"])
    assert m["accuracy"] == 75.0 and m["n"] == 4
    assert m["per_type"] == {"what": {"accuracy": 50.0, "n": 2}, "why": {"accuracy": 100.0, "n": 2}}
    assert "per_type" not in qa_accuracy([1], [1])


def test_per_question_num_choices():
    assert qa_accuracy([1, 0], [1, 1], num_choices=[2, 5])["accuracy"] == 50.0
    with pytest.raises(
        InputError, match=r"question 'q0' \(prediction\): answer index 2 is out of range \[0, 2\)"
    ):
        qa_accuracy([2, 0], [1, 1], num_choices=[2, 5], ids=["q0", "q1"])


@pytest.mark.parametrize(
    "preds, answers, match",
    [
        ([0], [5], r"question 0 \(ground truth\): answer index 5 is out of range \[0, 5\)"),
        ([-1], [0], "answer index -1 is out of range"),
        ([True], [0], "must be an integer"),
        ([0.5], [0], "must be an integer"),
        ([0, 1], [0], "2 predictions for 1 questions"),
        ([], [], "no questions"),
    ],
)
def test_bad_indices(preds, answers, match):
    with pytest.raises(InputError, match=match):
        qa_accuracy(preds, answers, num_choices=5)


def test_exact_match():
    assert normalize_answer("  The Red,  Ball! ") == "red ball"
    m = exact_match_accuracy(["The cat.", "dog", "two"], ["cat", ["a dog", "puppy"], "three"])
    assert m["accuracy"] == pytest.approx(200 / 3) and m["n"] == 3
