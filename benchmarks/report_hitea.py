"""HiTeA report on the demo corpus: the Table 4 ablation and the temporal shuffling test (Tables 7, 8, 13).

1. Pre-trains HiTeA-tiny briefly with base losses (VTC, VTM, MLM, PrefixLM), + CME, + MTRE, + both,
   for every seed (``tempovl pretrain hitea-tiny-pretrain model.losses=[...]``);
2. fine-tunes each on MSR-VTT-style retrieval, SSv2-Template-style retrieval and MC-QA
   (``tempovl finetune hitea-tiny-{retrieval,ssv2,mcqa} --init ...``) and evaluates each with and without
   ``--shuffle-frames``;
   (``--pretrained CKPT`` skips step 1 and fine-tunes from that checkpoint, e.g. on another ``--corpus``);
3. runs the shuffling test on any extra checkpoints given: ``--hitea CKPT`` (HiTeA, fine-tuned) and
   ``--hero CKPT`` (HERO retrieval / QA checkpoints, through the same ``tempovl evaluate --shuffle-frames``).

Writes ``OUT/report.md`` (markdown tables) and ``OUT/report.json``. Every step is a CLI call, so a run
that is stopped can be restarted with ``--reuse`` and skips the finished steps.

    python benchmarks/report_hitea.py --pretrain-steps 100 --finetune-steps 100 --seeds 0 \
        --hero runs/hero-tiny-msrvtt --out runs/bench/hitea_report
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tempovl.io import atomic_open, write_json

VARIANTS = {
    "base": ["vtc", "vtm", "mlm", "prefixlm"],
    "+CME": ["vtc", "vtm", "mlm", "prefixlm", "cme"],
    "+MTRE": ["vtc", "vtm", "mlm", "prefixlm", "mtre"],
    "+CME+MTRE": ["vtc", "vtm", "mlm", "prefixlm", "cme", "mtre"],
}
ZERO_SHOT = {  # column -> (task the pre-trained checkpoint is evaluated as, metric)
    "0-shot retrieval AveR": ("hitea-retrieval", "t2v_mean_recall"),  # caption pairs of the single clips
    "0-shot MC-QA acc": ("hitea-mcqa", "accuracy"),  # the VTM head scores question + candidate
}
TASKS = {  # experiment preset -> (what it is, headline metric)
    "retrieval": ("MSR-VTT-style retrieval (appearance + action)", "t2v_mean_recall"),
    "ssv2": ("SSv2-Template-style retrieval (action only)", "t2v_mean_recall"),
    "mcqa": ("TVQA-style MC-QA", "accuracy"),
}


def cli(args: list[str], log: Path) -> None:
    """Run ``tempovl ARGS``; its output is appended to `log`; a failure stops the report."""
    with log.open("a", encoding="utf-8") as f:
        f.write(f"\n$ tempovl {' '.join(args)}\n")
        f.flush()
        rc = subprocess.call([sys.executable, "-m", "tempovl.cli", *args], stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"tempovl {' '.join(args)} failed (exit {rc}); see {log}")


def done(path: Path) -> bool:
    return (path / "latest").is_file() or (path / "model.safetensors").is_file()


def evaluate(
    ckpt: Path,
    out: Path,
    split: str,
    shuffle_seed: int | None,
    log: Path,
    reuse: bool,
    task: str | None = None,
) -> dict:
    """Metrics of one ``tempovl evaluate`` call, frames in order (`shuffle_seed` None) or shuffled with that
    seed, as the checkpoint's own task or (zero-shot) as `task`; reused when its metrics.json exists and `reuse`."""
    if not (reuse and (out / "metrics.json").is_file()):
        shuffle = [] if shuffle_seed is None else [f"data.shuffle_seed={shuffle_seed}", "--shuffle-frames"]
        as_task = ["--task", task] if task else []
        cli(["evaluate", str(ckpt), *shuffle, *as_task, "--split", split, "--out", str(out)], log)
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["metrics"]


def chance_key(key: str) -> str:
    """Where an evaluation records what chance scores on `key`: t2v_R@1 -> t2v_chance_R@1, accuracy -> chance_accuracy."""
    return f"{key[:4]}chance_{key[4:]}" if key.startswith(("t2v_", "v2t_")) else f"chance_{key}"


def headline(metrics: dict) -> str:
    """The metric a shuffling row reports: mean recall for retrieval, accuracy for QA, else the first number."""
    for key in ("t2v_mean_recall", "accuracy", "SVMR_0.5-r5"):  # moments: localisation in the right video
        if key in metrics:
            return key
    return next(k for k, v in metrics.items() if isinstance(v, (int, float)))


def shuffle_test(
    ckpt: Path, out: Path, splits: list[str], shuffle_seeds: list[int], log: Path, reuse: bool
) -> dict:
    """Original / Shuffled / Gap of a checkpoint's headline metric, each the mean over `splits`; Shuffled is
    also the mean over the frame permutations `shuffle_seeds`. Also returns the in-order metrics of every split."""
    orig = {split: evaluate(ckpt, out / f"eval-{split}", split, None, log, reuse) for split in splits}
    key = headline(orig[splits[0]])
    shuf = [
        evaluate(ckpt, out / f"eval-{split}-shuffled{seed}", split, seed, log, reuse)[key]
        for split in splits
        for seed in shuffle_seeds
    ]
    chances = [orig[split].get(chance_key(key)) for split in splits]
    chance = statistics.mean(chances) if None not in chances else None  # a random ranking / answer
    o = statistics.mean(float(orig[split][key]) for split in splits)
    s = statistics.mean(float(v) for v in shuf)
    task = json.loads((out / f"eval-{splits[0]}" / "metrics.json").read_text(encoding="utf-8"))["task"]
    return {"checkpoint": str(ckpt), "task": task, "metric": key, "original": o, "shuffled": s, "gap": o - s, "chance": chance,
            "metrics": orig}  # fmt: skip


def run_seeds_in_parallel(jobs: int, seeds: list[int], out: Path) -> None:
    """Run this script once per seed (``--seeds S --reuse``), `jobs` at a time with OMP_NUM_THREADS=1."""
    argv = sys.argv[1:]
    i = argv.index("--seeds")
    rest = argv[:i] + [x for x in argv[i + 1 + len(seeds) :]]
    todo = list(seeds)
    running: list[subprocess.Popen] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while todo or running:
        while todo and len(running) < jobs:
            seed = todo.pop(0)
            with (out / f"driver-s{seed}.log").open("w") as f:
                cmd = [sys.executable, __file__, *rest, "--seeds", str(seed), "--reuse", "--jobs", "1"]
                running.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env))
        time.sleep(2)
        for proc in [r for r in running if r.poll() is not None]:
            running.remove(proc)
            if proc.returncode != 0:
                raise SystemExit(f"a seed's run failed (exit {proc.returncode}); see {out}/driver-s*.log")


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="runs/demo/corpus")
    p.add_argument("--out", default="runs/bench/hitea_report")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--pretrain-steps", type=int, default=100)
    p.add_argument("--finetune-steps", type=int, default=100)
    p.add_argument("--splits", nargs="+", default=["val", "test"], help="metrics are the mean over these")
    p.add_argument(
        "--shuffle-seeds", type=int, nargs="+", default=[0, 1, 2], help="frame permutations averaged"
    )
    p.add_argument("--skip-ablation", action="store_true", help="only the shuffling test of --hitea / --hero")
    p.add_argument("--hitea", nargs="*", default=[], metavar="CKPT", help="fine-tuned HiTeA checkpoints")
    p.add_argument("--hero", nargs="*", default=[], metavar="CKPT", help="fine-tuned HERO checkpoints")
    p.add_argument(
        "--pretrained",
        metavar="CKPT",
        help="skip pre-training: fine-tune every task from this checkpoint (variant 'given')",
    )
    p.add_argument(
        "--jobs", type=int, default=1, help="seeds run side by side, one thread each (2 on 2 cores)"
    )
    p.add_argument("--reuse", action="store_true", help="keep finished runs and evaluations in OUT")
    a = p.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    corpus = f"data.corpus={a.corpus}"
    t0 = time.time()
    if a.jobs > 1 and len(a.seeds) > 1 and not a.skip_ablation:
        run_seeds_in_parallel(a.jobs, a.seeds, out)
        a.reuse = True  # what the children finished is read back below
    ablation: dict[str, dict[str, dict[int, dict]]] = {}
    shuffles: list[dict] = []
    variants = [] if a.skip_ablation else ["given"] if a.pretrained else a.variants
    for variant in variants:
        for seed in a.seeds:
            tag = f"{variant.strip('+').replace('+', '-').lower()}-s{seed}"
            pre = Path(a.pretrained) if a.pretrained else out / f"pretrain-{tag}"
            if not (a.pretrained or (a.reuse and done(pre))):
                cli(
                    [
                        "pretrain", "hitea-tiny-pretrain", corpus, f"model.losses=[{','.join(VARIANTS[variant])}]",
                        f"train.max_steps={a.pretrain_steps}", f"train.seed={seed}", "train.eval_every=0",
                        "train.progress=false", "train.curves=false", "--out", str(pre),
                    ],
                    log,
                )  # fmt: skip
            for column, (zs_task, _) in (
                {} if a.pretrained else ZERO_SHOT.items()
            ):  # on the pre-training corpus
                runs = {sp: evaluate(pre, out / f"zeroshot-{zs_task}-{tag}-{sp}", sp, None, log, True, zs_task)
                        for sp in a.splits}  # fmt: skip
                ablation.setdefault(variant, {}).setdefault(column, {})[seed] = runs
            for task in a.tasks:
                ft = out / f"{task}-{tag}"
                if not (a.reuse and done(ft)):
                    cli(
                        [
                            "finetune", f"hitea-tiny-{task}", corpus, f"train.max_steps={a.finetune_steps}",
                            f"train.seed={seed}", "train.progress=false", "train.curves=false",
                            "--init", str(pre), "--out", str(ft),
                        ],
                        log,
                    )  # fmt: skip
                row = shuffle_test(ft, ft, a.splits, a.shuffle_seeds, log, a.reuse)
                row.update(family="HiTeA", variant=variant, seed=seed, preset=task)
                shuffles.append(row)
                ablation.setdefault(variant, {}).setdefault(task, {})[seed] = row["metrics"]
    for family, ckpts in (("HiTeA", a.hitea), ("HERO", a.hero)):
        for ckpt in ckpts:  # runs named NAME-sSEED (e.g. runs/r5/vcmr-pt-s0/best) are grouped by NAME
            run = Path(ckpt).parent.name if Path(ckpt).name in ("best", "latest") else Path(ckpt).name
            name, seed = (run.rsplit("-s", 1) + [None])[:2] if re.search(r"-s\d+$", run) else (run, None)
            row = shuffle_test(
                Path(ckpt), out / f"{family.lower()}-{run}", a.splits, a.shuffle_seeds, log, a.reuse
            )
            row.update(family=family, variant=name, seed=seed, preset=row["task"])
            shuffles.append(row)

    splits = " + ".join(a.splits)
    lines = [
        f"# HiTeA / HERO report ({a.corpus}; metrics are the mean over splits {splits}; seeds {a.seeds})",
        "",
    ]
    if ablation:
        what = f"pre-trained: {a.pretrained}" if a.pretrained else f"pre-train {a.pretrain_steps} steps"
        title = "Fine-tuning" if a.pretrained else "Table 4 ablation"
        lines += [f"## {title} ({what}, fine-tune {a.finetune_steps} steps; mean ± std over seeds)", ""]
        columns = [] if a.pretrained else [(name, name, key) for name, (_, key) in ZERO_SHOT.items()]
        for task in a.tasks:  # (header, where in `ablation`, metric)
            keys = ["accuracy"] if task == "mcqa" else ["t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_mean_recall"]
            names = (
                ["MC-QA acc"]
                if task == "mcqa"
                else [f"{task} R@1", f"{task} R@5", f"{task} R@10", f"{task} AveR"]
            )
            columns += [(name, task, key) for name, key in zip(names, keys)]
        lines += [
            "| variant | " + " | ".join(c[0] for c in columns) + " |",
            "|" + "---|" * (len(columns) + 1),
        ]
        for variant, per_task in ablation.items():
            cells = [variant]
            for _, where, key in columns:  # per seed: the mean over splits; then mean ± std over seeds
                runs = per_task[where].values()
                cells.append(mean_std([statistics.mean(float(m[key]) for m in run.values()) for run in runs]))
            lines.append("| " + " | ".join(cells) + " |")
        first = next(iter(ablation.values()))
        cells = ["chance"]
        for _, where, key in columns:  # what a random ranking / answer scores on the same galleries
            chance = chance_key(key)
            run = next(iter(first[where].values()))
            cells.append(
                f"{statistics.mean(float(m[chance]) for m in run.values()):.1f}"
                if chance in run[a.splits[0]]
                else "–"
            )
        lines += ["| " + " | ".join(cells) + " |", ""]
    if shuffles:
        shuffled = f"mean over frame permutations {a.shuffle_seeds}"
        groups: dict[tuple, list[dict]] = {}
        for r in shuffles:
            groups.setdefault((r["family"], r["variant"], r["preset"], r["metric"]), []).append(r)
        lines += [
            f"## Temporal shuffling test (Original / Shuffled / Gap; Shuffled is the {shuffled}; mean ± std over seeds)",
            "",
            "| family | variant | task | metric | runs | chance | Original | Shuffled | Gap |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for (family, variant, preset, metric), rows in groups.items():
            chance = [r["chance"] for r in rows if r.get("chance") is not None]
            cells = [f"{statistics.mean(chance):.1f}" if chance else "–"]
            cells += [mean_std([r[k] for r in rows]) for k in ("original", "shuffled", "gap")]
            lines.append(
                f"| {family} | {variant} | {preset} | {metric} | {len(rows)} | " + " | ".join(cells) + " |"
            )
        lines += [
            "",
            "Per run:",
            "",
            "| family | variant | task | seed | Original | Shuffled | Gap |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in shuffles:
            lines.append(
                f"| {r['family']} | {r['variant']} | {r['preset']} | {r['seed']} | "
                f"{r['original']:.1f} | {r['shuffled']:.1f} | {r['gap']:+.1f} |"
            )
        lines.append("")
    lines.append(f"wall time {time.time() - t0:.0f} s; commands in {log}")
    text = "\n".join(lines) + "\n"
    with atomic_open(out / "report.md") as f:
        f.write(text)
    write_json(out / "report.json", {"args": vars(a), "ablation": ablation, "shuffling": shuffles})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
