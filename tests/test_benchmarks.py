"""Benchmarks stay runnable (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_decode_benchmark_keeps_the_outputs_identical(tmp_path):
    out = tmp_path / "decode.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_decode.py"), "--moments", "2", "--max-len", "4"]
    subprocess.run([*cmd, "--repeat", "1", "--out", str(out)], check=True, capture_output=True, text=True)
    rows = [
        line
        for line in out.read_text().splitlines()
        if line.startswith("| HERO") or line.startswith("| HiTeA")
    ]
    assert len(rows) == 4 and all(row.rstrip(" |").endswith("True") for row in rows), rows
