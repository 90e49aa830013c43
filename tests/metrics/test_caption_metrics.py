"""Caption metrics through pycocoevalcap (Java): a hand-computed case, identical captions, errors."""

import pytest

from tempovl.errors import InputError
from tempovl.metrics import caption_scores

GTS = {"c1": ["red blue green pink gold"], "c2": ["one two three four"]}


def test_known_small_case_without_meteor():
    res = {"c1": "Red blue green pink white.", "c2": "one two three four"}
    s = caption_scores(GTS, res, metrics=["BLEU-4", "ROUGE-L", "CIDEr-D"])
    # corpus BLEU: clipped n-gram precisions 8/9, 6/7, 4/5, 2/3, equal lengths (no brevity penalty)
    assert s["BLEU-4"] == pytest.approx((8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25, rel=1e-6)
    # ROUGE-L: LCS 4 of 5 words (P = R = 0.8) for c1, 1.0 for c2
    assert s["ROUGE-L"] == pytest.approx(0.9)
    # CIDEr-D: no n-gram shared between clips, so idf is log 2 for all and cosines are
    # c1: mean(4/5, 3/4, 2/3, 1/2) x 10, c2: 10 (same length, no penalty)
    assert s["CIDEr-D"] == pytest.approx((10 * (4 / 5 + 3 / 4 + 2 / 3 + 1 / 2) / 4 + 10) / 2)
    assert "METEOR" not in s


@pytest.mark.slow
def test_identical_captions_all_metrics():
    res = {k: v[0] for k, v in GTS.items()}
    s = caption_scores(GTS, res)
    assert list(s) == ["BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"]
    assert s["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert s["METEOR"] == pytest.approx(1.0)
    assert s["ROUGE-L"] == pytest.approx(1.0)
    assert s["CIDEr-D"] == pytest.approx(10.0)


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(InputError, match="need a Java runtime"):
        caption_scores(GTS, {"c1": "x", "c2": "y"})


@pytest.mark.parametrize(
    "gts, res, match",
    [
        (GTS, {"c1": "x"}, r"references without a predicted caption: \['c2'\]"),
        (GTS, {"c1": "x", "c2": "y", "c3": "z"}, r"ids without references: \['c3'\]"),
        ({"c1": []}, {"c1": "x"}, "non-empty list"),
        ({"c1": "a string"}, {"c1": "x"}, "non-empty list"),
        ({"c1": ["a"]}, {"c1": ["x"]}, "one string"),
        (GTS, {}, "no predicted captions"),
    ],
)
def test_bad_input(gts, res, match):
    with pytest.raises(InputError, match=match):
        caption_scores(gts, res, metrics=["BLEU-4"])


def test_unknown_metric():
    with pytest.raises(InputError, match="SPICE"):
        caption_scores(GTS, {"c1": "x", "c2": "y"}, metrics=["SPICE"])
