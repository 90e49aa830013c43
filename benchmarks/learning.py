"""The papers' claims on the demo corpus, mean ± std over seeds, with chance beside every number.

HERO (Li et al. 2020), for each feature set given (extracted by a real extractor, and the `oracle` upper
bound written from the corpus's scripts):
1. pre-trained vs from scratch on VCMR, TVQA, VIOLIN and TVC (HERO Tables 1 and 2);
2. the hierarchical model vs the flat F-TRM and the hierarchical-text H-TRM baselines (HERO section 4.3),
   from scratch on TVQA and VCMR;
3. each pre-training task's contribution (HERO Table 1 rows): MLM + MNCE, + FOM, + VSM, all four,
   fine-tuned on VCMR and TVQA;
4. the temporal shuffling test on every fine-tuned checkpoint (frames permuted at test time), with the gap
   on order-dependent queries / questions apart from the order-free ones.
HiTeA's Table 4 ablation and its shuffling test come from `benchmarks/report_hitea.py` (`--hitea` runs it).

Every step is a `tempovl` CLI call into OUT; a stopped run restarts with `--reuse` and skips what is done.
`--jobs N` runs N calls side by side (one thread each). Writes OUT/learning.md and OUT/learning.json.

    python benchmarks/learning.py --corpus runs/demo/corpus \
        --features extracted=runs/demo/features oracle=runs/demo/oracle --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from machine import cpu_model

SECTIONS = ("pretraining", "architecture", "ablation", "shuffle")
HERO_TASKS = {  # experiment preset suffix -> (column, headline metric, chance metric or None)
    "vcmr": ("VCMR: VR R@1 / SVMR 0.5-R@1 / VCMR 0.5-R@1", ("VR_r1", "SVMR_0.5-r1", "VCMR_0.5-r1"), None),
    "tvqa": ("TVQA acc", ("accuracy",), "chance_accuracy"),
    "violin": ("VIOLIN acc", ("accuracy",), "chance_accuracy"),
    "tvc": ("TVC CIDEr-D", ("CIDEr",), None),
}
ABLATION = {  # HERO Table 1 rows: pre-training sub-task ratios (official 2 : 2 : 1 : 2)
    "MLM+MNCE": {"mlm": 2, "mnce": 2, "fom": 0, "vsm": 0},
    "MLM+MNCE+FOM": {"mlm": 2, "mnce": 2, "fom": 1, "vsm": 0},
    "MLM+MNCE+VSM": {"mlm": 2, "mnce": 2, "fom": 0, "vsm": 2},
    "all": {"mlm": 2, "mnce": 2, "fom": 1, "vsm": 2},
    "VSM": {"mlm": 0, "mnce": 0, "fom": 0, "vsm": 2},  # not a paper row: the demo's default (issue 12)
    "MLM": {"mlm": 2, "mnce": 0, "fom": 0, "vsm": 0},
}
ARCHS = {"HERO": "hero", "F-TRM": "hero-ftrm", "H-TRM": "hero-htrm"}


@dataclass
class Job:
    name: str
    args: list[str]
    out: Path
    deps: list[str] = field(default_factory=list)


def finished(job: Job) -> bool:
    return (job.out / "latest").is_file() or (job.out / "metrics.json").is_file()


def run_jobs(jobs: list[Job], parallel: int, log_dir: Path, reuse: bool) -> None:
    """Run `jobs` (each `tempovl ARGS`) in dependency order, `parallel` at a time with one thread each."""
    todo = [j for j in jobs if not (reuse and finished(j))]
    done = {j.name for j in jobs} - {j.name for j in todo}
    running: dict[str, tuple[subprocess.Popen, Job]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1" if parallel > 1 else os.environ.get("OMP_NUM_THREADS", "2")}
    total, t0 = len(todo), time.perf_counter()
    while todo or running:
        ready = [j for j in todo if all(d in done for d in j.deps)]
        while ready and len(running) < parallel:
            job = ready.pop(0)
            todo.remove(job)
            log = (log_dir / f"{job.name}.log").open("w")
            cmd = [sys.executable, "-m", "tempovl.cli", *job.args]
            log.write("$ tempovl " + " ".join(job.args) + "\n")
            log.flush()
            running[job.name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), job)
        time.sleep(1)
        for name, (proc, job) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode != 0:
                raise SystemExit(
                    f"tempovl {' '.join(job.args)} failed (exit {proc.returncode}); see {log_dir}/{name}.log"
                )
            done.add(name)
            n = total - len(todo) - len(running)
            print(f"[{n}/{total}, {time.perf_counter() - t0:.0f} s] {name}", flush=True)


def plan(args) -> tuple[list[Job], list[dict]]:
    """Every CLI call of the report, and the rows (which checkpoint each table cell reads)."""
    jobs: list[Job] = []
    rows: list[dict] = []
    out = args.out
    sections = set(args.sections)

    def pretrain(feat: str, path: str, seed: int, variant: str = "all") -> str:
        name = f"pt-{feat}-{variant}-s{seed}"
        if not any(j.name == name for j in jobs):
            ratios = ABLATION[variant]
            sets = [f"task.ratios.{k}={v}" for k, v in ratios.items()]
            jobs.append(Job(name, ["pretrain", "hero-tiny-pretrain", *common(path, seed), *sets,
                                   f"train.max_steps={args.pretrain_steps}", "--out", str(out / name)],
                            out / name))  # fmt: skip
        return name

    def finetune(task: str, feat: str, path: str, seed: int, init: str | None, arch: str = "hero") -> str:
        name = f"ft-{task}-{feat}-{init or 'scratch'}-{arch}-s{seed}"
        if not any(j.name == name for j in jobs):
            a = [
                "finetune" if init else "train",
                f"hero-tiny-{task}",
                *common(path, seed),
                f"model.name={arch}",
            ]
            a += [f"train.max_steps={args.finetune_steps}"] if args.finetune_steps else []
            a += ["--init", str(out / init / "best")] if init else []
            jobs.append(Job(name, [*a, "--out", str(out / name)], out / name, [init] if init else []))
            evaluate(name, shuffled=False)
            if "shuffle" in sections:
                evaluate(name, shuffled=True)
        return name

    def evaluate(run: str, shuffled: bool) -> None:
        name = f"{run}-eval{'-shuffled' if shuffled else ''}"
        a = ["evaluate", str(out / run / "best"), "--split", "test", "--out", str(out / name)]
        jobs.append(Job(name, a + (["--shuffle-frames"] if shuffled else []), out / name, [run]))

    def common(path: str, seed: int) -> list[str]:
        return [
            f"data.corpus={args.corpus}",
            f"data.features={path}",
            f"train.seed={seed}",
            "train.progress=false",
        ]

    for feat, path in args.features:
        for seed in args.seeds:
            if "pretraining" in sections or "shuffle" in sections:
                pt = pretrain(feat, path, seed, args.pretrain_variant)
                for task in args.tasks:
                    for init in (pt, None):
                        run = finetune(task, feat, path, seed, init)
                        rows.append({"section": "pretraining", "features": feat, "seed": seed, "task": task,
                                     "variant": "pre-trained" if init else "scratch", "run": run})  # fmt: skip
            if "architecture" in sections and feat == args.features[0][0]:
                for label, arch in ARCHS.items():
                    for task in ("tvqa", "vcmr"):
                        run = finetune(task, feat, path, seed, None, arch)
                        rows.append({"section": "architecture", "features": feat, "seed": seed, "task": task,
                                     "variant": label, "run": run})  # fmt: skip
            if "ablation" in sections and feat == args.features[0][0]:
                for variant in ABLATION:
                    pt = pretrain(feat, path, seed, variant)
                    for task in ("vcmr", "tvqa"):
                        run = finetune(task, feat, path, seed, pt)
                        rows.append({"section": "ablation", "features": feat, "seed": seed, "task": task,
                                     "variant": variant, "run": run})  # fmt: skip
    return jobs, rows


def order_split(eval_dir: Path, corpus: Path) -> dict[str, float]:
    """VCMR runs: SVMR 0.5-R@1 on the order-dependent and the order-free test queries apart (from the demo
    corpus's annotations/meta.jsonl); QA runs report theirs already (`accuracy_order` / `accuracy_free`)."""
    from tempovl.metrics.moment import eval_tvr

    pred = eval_dir / "predictions.json"
    if not pred.is_file() or not (corpus / "annotations" / "meta.jsonl").is_file():
        return {}
    gt = [json.loads(line) for line in (eval_dir / "ground_truth.jsonl").open()]
    order = {}
    for line in (corpus / "annotations" / "meta.jsonl").open():
        m = json.loads(line)
        if m["file"] == "tvr_test.jsonl":
            order[m["id"]] = m["order"]
    submission = json.loads(pred.read_text())
    out = {}
    for label, want in (("order", True), ("free", False)):
        ids = {g["desc_id"] for g in gt if order.get(g["desc_id"]) is want}
        if not ids:
            continue
        sub = {**submission, "SVMR": [r for r in submission.get("SVMR", []) if r["desc_id"] in ids],
               "VCMR": [r for r in submission.get("VCMR", []) if r["desc_id"] in ids],
               "VR": [r for r in submission.get("VR", []) if r["desc_id"] in ids]}  # fmt: skip
        res = eval_tvr(sub, [g for g in gt if g["desc_id"] in ids], use_desc_type=False)
        out[f"SVMR_0.5-r1_{label}"] = float(res["SVMR"]["0.5-r1"])
    return out


def metrics_of(out: Path, run: str, corpus: Path) -> dict:
    res = {}
    for suffix, tag in (("", ""), ("-shuffled", "shuffled_")):
        path = out / f"{run}-eval{suffix}" / "metrics.json"
        if path.is_file():
            m = json.loads(path.read_text())["metrics"]
            m.update(order_split(out / f"{run}-eval{suffix}", corpus))
            res.update({f"{tag}{k}": v for k, v in m.items() if isinstance(v, (int, float))})
    return res


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def cell(rows: list[dict], keys: tuple[str, ...]) -> str:
    return " / ".join(mean_std([r["metrics"][k] for r in rows if k in r["metrics"]]) for k in keys)


def report(rows: list[dict], args) -> str:
    cpu = cpu_model()
    lines = [f"# Learning on {args.corpus} (test split; mean ± std over seeds {args.seeds}; CPU {cpu})", ""]
    for section in ("pretraining", "architecture", "ablation"):
        sec = [r for r in rows if r["section"] == section]
        if not sec:
            continue
        tasks = list(dict.fromkeys(r["task"] for r in sec))
        title = {"pretraining": f"HERO: pre-trained ({args.pretrain_variant}, {args.pretrain_steps} steps) vs from "
                                "scratch (Tables 1, 2)",
                 "architecture": "HERO vs F-TRM vs H-TRM, from scratch (section 4.3)",
                 "ablation": "HERO pre-training tasks (Table 1 rows), fine-tuned"}[section]  # fmt: skip
        lines += [f"## {title}", "", "| features | variant | " + " | ".join(HERO_TASKS[t][0] for t in tasks) + " |",
                  "| --- | --- |" + " --- |" * len(tasks)]  # fmt: skip
        for feat in dict.fromkeys(r["features"] for r in sec):
            for variant in dict.fromkeys(r["variant"] for r in sec):
                cells = [cell([r for r in sec if (r["features"], r["variant"], r["task"]) == (feat, variant, t)],
                              HERO_TASKS[t][1]) for t in tasks]  # fmt: skip
                lines.append(f"| {feat} | {variant} | " + " | ".join(cells) + " |")
            chance = []
            for t in tasks:
                key = HERO_TASKS[t][2]
                vals = [r["metrics"][key] for r in sec if r["task"] == t and key and key in r["metrics"]]
                chance.append(
                    f"{statistics.mean(vals):.1f}"
                    if vals
                    else ("VR " + f"{100 / args.test_videos:.1f}" if t == "vcmr" else "–")
                )
            lines.append(f"| {feat} | chance | " + " | ".join(chance) + " |")
        lines.append("")
    sec = [r for r in rows if r["section"] == "pretraining" and r["variant"] == "pre-trained"]
    if any("shuffled_" + k for r in sec for k in r["metrics"]):
        lines += ["## Temporal shuffling test (frames permuted at test time), pre-trained models", "",
                  "| features | task | metric | in order | shuffled | gap | gap, order-dependent | gap, order-free |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for feat in dict.fromkeys(r["features"] for r in sec):
            for task in dict.fromkeys(r["task"] for r in sec):
                rs = [r for r in sec if (r["features"], r["task"]) == (feat, task)]
                key = HERO_TASKS[task][1][-1] if task != "vcmr" else "SVMR_0.5-r1"
                sub = (
                    ("accuracy_order", "accuracy_free")
                    if task in ("tvqa", "violin")
                    else (f"{key}_order", f"{key}_free")
                )

                def gap(k: str, rs=rs) -> str:
                    return mean_std([r["metrics"][k] - r["metrics"]["shuffled_" + k] for r in rs
                                     if k in r["metrics"] and "shuffled_" + k in r["metrics"]])  # fmt: skip

                orig = mean_std([r["metrics"][key] for r in rs if key in r["metrics"]])
                shuf = mean_std(
                    [r["metrics"]["shuffled_" + key] for r in rs if "shuffled_" + key in r["metrics"]]
                )
                lines.append(
                    f"| {feat} | {task} | {key} | {orig} | {shuf} | {gap(key)} | {gap(sub[0])} | {gap(sub[1])} |"
                )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path("runs/demo/corpus"))
    p.add_argument("--features", nargs="+", default=["extracted=runs/demo/features"], metavar="NAME=STORE")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tasks", nargs="+", default=list(HERO_TASKS), choices=list(HERO_TASKS))
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--pretrain-steps", type=int, default=3000)
    p.add_argument(
        "--pretrain-variant",
        default="all",
        choices=list(ABLATION),
        help="the pre-training of the pre-trained vs scratch section (default: all four tasks, as the paper)",
    )
    p.add_argument("--finetune-steps", type=int, default=None, help="default: each preset's")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--reuse", action="store_true", help="skip steps whose output exists")
    p.add_argument("--hitea", action="store_true", help="also run benchmarks/report_hitea.py (Table 4)")
    p.add_argument("--out", type=Path, default=Path("runs/bench/learning"))
    args = p.parse_args()
    args.features = [tuple(f.split("=", 1)) for f in args.features]
    args.test_videos = len(json.loads((args.corpus / "splits.json").read_text())["test"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    jobs, rows = plan(args)
    t0 = time.perf_counter()
    print(
        f"{len(jobs)} steps ({sum(1 for j in jobs if args.reuse and finished(j))} already done)", flush=True
    )
    run_jobs(jobs, args.jobs, args.out / "logs", args.reuse)
    if args.hitea:
        cmd = [sys.executable, str(Path(__file__).with_name("report_hitea.py")), "--corpus", str(args.corpus),
               "--seeds", *map(str, args.seeds), "--jobs", str(args.jobs), "--out", str(args.out / "hitea"),
               *(["--reuse"] if args.reuse else [])]  # fmt: skip
        subprocess.run(cmd, check=True)
    for r in rows:
        r["metrics"] = metrics_of(args.out, r["run"], args.corpus)
    text = report(rows, args)
    if args.hitea and (args.out / "hitea" / "report.md").is_file():
        text += "\n## HiTeA (benchmarks/report_hitea.py)\n\n" + (args.out / "hitea" / "report.md").read_text()
    text += f"\n({time.perf_counter() - t0:.0f} s; `python {' '.join(sys.argv)}`)\n"
    print(text)
    (args.out / "learning.md").write_text(text)
    (args.out / "learning.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
