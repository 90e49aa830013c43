"""Tokenizers load offline from local directories: MiniLM's by default, or any BERT / RoBERTa files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tempovl.data.tokenizer import default_tokenizer_path, load_tokenizer
from tempovl.errors import InputError


def test_default_is_minilm_wordpiece():
    path = Path(default_tokenizer_path())
    assert (path / "vocab.txt").is_file()
    tok = load_tokenizer()
    assert tok.is_fast
    ids = tok("Hello ALICE: hi")["input_ids"]
    # uncased WordPiece of bert-base-uncased: [CLS] hello alice : hi [SEP]
    assert ids == [101, 7592, 5650, 1024, 7632, 102]
    assert (tok.cls_token, tok.sep_token, tok.mask_token, tok.pad_token_id) == ("[CLS]", "[SEP]", "[MASK]", 0)


def test_bare_wordpiece_vocab(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n")
    tok = load_tokenizer(tmp_path)
    assert tok("Hello world")["input_ids"] == [2, 5, 6, 3]
    assert tok("zebra")["input_ids"] == [2, 1, 3]  # unknown word -> [UNK]


def test_bare_roberta_bpe(tmp_path):
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "h": 5, "i": 6, "Ġ": 7, "hi": 8}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nh i\n")
    tok = load_tokenizer(tmp_path)
    assert tok.is_fast
    assert tok("hi")["input_ids"] == [0, 8, 2]  # <s> hi </s>


def test_not_a_tokenizer(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path}: not a tokenizer directory"):
        load_tokenizer(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(InputError, match=f"{tmp_path}: cannot load tokenizer"):
        load_tokenizer(tmp_path)
