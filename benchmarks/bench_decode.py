"""Caption decoding speed of the shared decoder (``tempovl.models.text.beam_search``), measured in one run:
re-encoding the whole prefix and projecting every position onto the vocabulary at every step (the way both
decoders ran before) against the key/value cache with the last position projected alone, for HERO's TVC
decoder and HiTeA's text decoder, greedy and beam 3. Both paths must produce identical token ids; the
table says so per row.

    python benchmarks/bench_decode.py                    # hero-tiny / hitea-tiny sizes, 32 moments, 30 tokens
    python benchmarks/bench_decode.py --out runs/bench/decode.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from machine import cpu_model

from tempovl.config import load_config
from tempovl.io import atomic_open
from tempovl.models.text import SpecialTokens, beam_search
from tempovl.registry import build_model
from tempovl.tasks.hero.caption import CaptionDecoder

TARGET = 4.0  # issue 16: beam-search captions per second at least 4x today's, identical outputs


def hero_step():
    """HERO-tiny's word embeddings + MLM head with a 2-layer TVC decoder, random weights."""
    model = build_model({**load_config("model/hero-tiny")["model"], "frame_dim": 16}).eval()
    decoder = CaptionDecoder(model.cfg, 2, 64).eval()
    word = model.text_embed.word

    def before(ids, enc, enc_mask, cache, start):  # the whole prefix, every position projected
        return model.mlm_head(decoder(word(ids), enc, enc_mask), word.weight)[:, -1]

    def now(ids, enc, enc_mask, cache, start):  # the new position only, keys/values cached
        return model.mlm_head(decoder(word(ids), enc, enc_mask, cache, start)[:, -1], word.weight)

    return before, now, model.cfg.hidden


def hitea_step():
    model = build_model(load_config("model/hitea-tiny")["model"]).eval()

    def before(ids, enc, enc_mask, cache, start):
        return model.decoder(ids, torch.ones_like(ids, dtype=torch.bool), enc, enc_mask)[:, -1]

    def now(ids, enc, enc_mask, cache, start):
        mask = torch.ones_like(ids, dtype=torch.bool)
        return model.decoder(ids, mask, enc, enc_mask, last_only=True, cache=cache, start=start)

    return before, now, model.cfg.hidden


def measure(before, now, hidden: int, moments: int, memory_len: int, max_len: int, beams: int, repeat: int):
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(moments, memory_len, hidden, generator=g)
    enc_mask = torch.ones(moments, memory_len, dtype=torch.bool)
    tokens = SpecialTokens(bos=101, eos=102, pad=0)
    rows = []
    for step, use_cache in ((before, False), (now, True)):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            ids, _ = beam_search(step, enc, enc_mask, tokens, [], max_len, max_len, beams, 1.0, use_cache)
            best = min(best, time.perf_counter() - t0)
        rows.append((ids, moments / best))
    return rows[0][1], rows[1][1], torch.equal(rows[0][0], rows[1][0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moments", type=int, default=32)
    p.add_argument("--memory-len", type=int, default=20)
    p.add_argument("--max-len", type=int, default=30, help="tokens per caption (min = max: fixed work)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    lines = [
        f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads",
        "",
        "| decoder | beams | captions/s before (whole prefix, full projection) | captions/s now (KV cache,"
        " last position) | speed-up | same ids |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    decoders = (("HERO TVC (hero-tiny)", hero_step()), ("HiTeA (hitea-tiny)", hitea_step()))
    for name, (before, now, hidden) in decoders:
        for beams in (1, 3):
            full, last, same = measure(
                before, now, hidden, args.moments, args.memory_len, args.max_len, beams, args.repeat
            )
            lines.append(f"| {name} | {beams} | {full:.1f} | {last:.1f} | {last / full:.2f}x | {same} |")
    lines += [
        "",
        f"Issue 16's decoding target: >= {TARGET:.0f}x captions/s with identical outputs.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(args.out) as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
