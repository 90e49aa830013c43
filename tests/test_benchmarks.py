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


def test_gpu_check_runs_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.sh (issue 16) at tiny size on the CPU: every non-compiled setting's first loss
    matches the CPU fp32 loss within the script's tolerance (it exits 1 otherwise)."""
    out = tmp_path / "gpu_check.md"
    cmd = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--size", "tiny"]
    cmd += ["--settings", "bf16,fp16-scaler,bf16-ddp,bf16-fsdp", "--steps", "1", "--clips", "2"]
    cmd += ["--frames", "10", "--hitea-batch", "2", "--hitea-frames", "4", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| hero-tiny", "| hitea-tiny"))]
    assert len(rows) == 8 and all("| yes |" in row for row in rows), rows


def test_speed_benchmarks_print_their_targets_beside_the_machine(tmp_path):
    """bench_hero / bench_hitea / bench_extract at tiny sizes: each writes its table with issue 16's target
    line (measured, met or not) and the CPU model with its AMX / AVX512-BF16 flags."""
    bench = ROOT / "benchmarks"
    runs = {
        "hero.txt": [bench / "bench_hero.py", "--preset", "hero-tiny", "--clips", "2", "--frames", "10",
                     "--steps", "1", "--attn", "auto", "--modes", "pack"],
        "hitea.md": [bench / "bench_hitea.py", "--preset", "hitea-tiny", "--size", "32", "--frames", "4",
                     "--steps", "1", "--warmup", "0", "--device", "cpu"],
        "extract.md": [bench / "bench_extract.py", "--extractors", "random2d+motion", "--limit", "1",
                       "--size", "64"],
    }  # fmt: skip
    for name, cmd in runs.items():
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, *map(str, cmd), "--out", str(out)], capture_output=True, text=True
        )
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        text = out.read_text()
        assert "AMX" in text and "AVX512-BF16" in text, (name, text)
        if name != "extract.md":  # the extraction target is for mobilenet_v2+motion only
            assert "target:" in text and ("not met" in text or "met" in text), (name, text)


def test_serve_benchmark_runs_the_real_server(tmp_path):
    """bench_serve.py at a tiny size: its own corpus and index, the real `tempovl serve`, every answer
    200 and the issue 15 target lines written."""
    out = tmp_path / "serve.md"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_serve.py"),
        "--levels",
        "1,5",
        "--requests",
        "10",
        "--rounds",
        "1",
    ]
    proc = subprocess.run(
        [*cmd, "--ranges", "5", "--seconds", "30", "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "| 1 | 10 | 0 | 0 |" in text and "| 5 | 10 | 0 | 0 |" in text, text
    assert "5 answered, 0 errors" in text and "target: 0 errors; measured 0 (met)" in text, text


def test_vr_reference_reads_what_a_models_top1_videos_hold(tiny_corpus, tmp_path):
    """`vr_reference.py --predictions`: a ranking that puts each query's own video first holds every event
    it names; one that puts another video first is never the right video."""
    import json

    queries = [
        json.loads(x) for x in (tiny_corpus / "annotations" / "tvr_test.jsonl").read_text().splitlines()
    ]
    videos = sorted({q["vid_name"] for q in queries})
    assert len(videos) >= 2
    idx = {v: i for i, v in enumerate(videos)}

    def predictions(pick) -> Path:
        path = tmp_path / f"pred-{pick.__name__}.json"
        rows = [{"desc_id": q["desc_id"], "predictions": [[idx[pick(q)], 0.0, 1.0, 1.0]]} for q in queries]
        path.write_text(json.dumps({"video2idx": idx, "VCMR": rows}))
        return path

    def own(q):
        return q["vid_name"]

    def other(q):
        return videos[(idx[q["vid_name"]] + 1) % len(videos)]

    out = tmp_path / "vr.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "vr_reference.py"), str(tiny_corpus), "--out", str(out)]
    cmd += ["--predictions", f"test={predictions(own)}", f"test={predictions(other)}"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = [line.split("|")[4:-1] for line in out.read_text().splitlines() if "pred-" in line]
    assert [float(c) for c in rows[0]] == [100.0] * 5, rows
    assert float(rows[1][0]) == 0.0, rows
