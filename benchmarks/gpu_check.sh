#!/usr/bin/env bash
# The GPU check of issue 16 (see benchmarks/gpu_check.py for what it runs and prints). On a lent GPU:
#   bash benchmarks/gpu_check.sh                       # hero-base + hitea-base, every setting
# and on the CPU, as the test suite runs it:
#   bash benchmarks/gpu_check.sh --device cpu --size tiny --settings bf16,fp16-scaler,bf16-ddp,bf16-fsdp
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/gpu_check.py "$@"
