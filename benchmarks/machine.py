"""What every benchmark prints beside its table: the machine (CPU model, AMX / AVX512-BF16, threads, GPU)
and the matmul peak measured in the same process, against which MFU is computed.

Machines differ between sessions (Intel with AMX one day, AMD without it the next), so a figure is only
read as a ratio to a peak measured in the same run. Imported by the scripts in this folder (``python
benchmarks/x.py`` puts the folder on ``sys.path``).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from tempovl.io import atomic_open


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_line(device: torch.device | str = "cpu") -> str:
    """One line: CPU model, AMX and AVX512-BF16 presence, torch threads, and the GPU if `device` is one."""
    flags = cpu_flags()
    amx = "yes" if {"amx_bf16", "amx_tile"} & flags else "no"
    bf16 = "yes" if "avx512_bf16" in flags else "no"
    line = f"CPU {cpu_model()} (AMX {amx}, AVX512-BF16 {bf16}), {torch.get_num_threads()} threads"
    device = torch.device(device)
    if device.type == "cuda":
        line += f"; GPU {torch.cuda.get_device_name(device)}"
    return line + f"; torch {torch.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device | str, dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Best FLOP/s of an n x n x n matmul in `dtype` on `device` (the MFU denominator)."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def target_line(target: str, measured: str, met: bool) -> str:
    """An issue's target beside this run's figure: ``target: T; measured M (met | not met)``."""
    return f"target: {target}; measured {measured} ({'met' if met else 'not met'})"


def publish(text: str, out: str | Path, echo: bool = True) -> None:
    """Print a benchmark's report (unless it was printed as it went) and write it to `out` (atomically,
    folders created)."""
    if echo:
        print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "w", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n")
