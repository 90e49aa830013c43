#!/usr/bin/env bash
# HERO downstream on the demo corpus: every task fine-tuned from scratch and from a HERO pre-trained checkpoint,
# evaluated on the test split, then one table (runs/report_hero/table.md).
#   bash benchmarks/report_hero.sh [PRETRAINED_CKPT] [OUT]
# PRETRAINED_CKPT defaults to runs/hero-tiny-pretrain/best (`tempovl pretrain hero-tiny-pretrain` writes it).
# Two runs go side by side with one thread each (a 2-core machine); about 25 minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
PT=${1:-runs/hero-tiny-pretrain/best}
OUT=${2:-runs/report_hero}
mkdir -p "$OUT"
run() {  # task init seed
  local task=$1 init=$2 seed=$3 dir=$OUT/$1-$2-s$3
  if [ "$init" = pt ]; then
    OMP_NUM_THREADS=1 tempovl finetune "hero-tiny-$task" train.progress=false train.seed="$seed" --init "$PT" --out "$dir" > "$dir.log" 2>&1
  else
    OMP_NUM_THREADS=1 tempovl train "hero-tiny-$task" train.progress=false train.seed="$seed" --out "$dir" > "$dir.log" 2>&1
  fi
  OMP_NUM_THREADS=1 tempovl evaluate "$dir/best" --split test --out "$dir/eval-test" >> "$dir.log" 2>&1
  echo "done $dir"
}
(for t in vcmr tvqa; do run $t scratch 0; run $t pt 0; done; for t in violin didemo; do run $t scratch 0; run $t pt 0; done) &
(for t in vcmr tvqa; do run $t scratch 1; run $t pt 1; done; for t in msrvtt tvc; do run $t scratch 0; run $t pt 0; done) &
wait
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = {"vcmr": ["VCMR_0.5-r1", "VCMR_0.5-r10", "SVMR_0.5-r1", "VR_r1", "VR_r10"], "tvqa": ["accuracy", "accuracy_order"],
        "violin": ["accuracy"], "didemo": ["VCMR_0.5-r1", "SVMR_0.5-r1", "VR_r1"],
        "msrvtt": ["t2v_R@1", "t2v_R@5", "t2v_median_rank"], "tvc": ["BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"]}
lines = ["| task | init | seed | test metrics |", "|---|---|---|---|"]
for task, ks in keys.items():
    for run in sorted(out.glob(f"{task}-*-s*/eval-test/metrics.json")):
        _, init, seed = run.parent.parent.name.split("-")
        m = json.loads(run.read_text())["metrics"]
        lines.append(f"| {task} | {init} | {seed[1:]} | " + ", ".join(f"{k} {m[k]:.2f}" for k in ks if m.get(k) is not None) + " |")
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
