"""Training observability on rank 0: progress bar, ``metrics.jsonl`` / ``eval.jsonl``, TensorBoard (if
installed and enabled), W&B (if installed and asked for), and ``curves.png`` at the end."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tempovl.io import atomic_open, read_jsonl

log = logging.getLogger("tempovl.train")

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
CURVES_FILE = "curves.png"


def truncate_after(path: Path, step: int) -> None:
    """Drop log lines of steps after `step` (they are redone when a run resumes from `step`)."""
    if not path.exists():
        return
    rows = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    with atomic_open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


class MetricLogger:
    """Writes metrics from rank 0; on other ranks every method does nothing."""

    def __init__(
        self,
        output_dir: str | Path,
        enabled: bool,
        start_step: int,
        total_steps: int,
        progress: bool = True,
        tensorboard: bool = False,
        wandb: bool = False,
        wandb_project: str = "tempovl",
        run_config: dict | None = None,
    ):
        self.enabled = enabled
        self.dir = Path(output_dir)
        self.tb = self.wandb = self.bar = None
        self._files: dict[str, Any] = {}
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in (METRICS_FILE, EVAL_FILE):
            truncate_after(self.dir / name, start_step)
            self._files[name] = open(self.dir / name, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.dir / "tb"), purge_step=start_step + 1)
            except ImportError:
                log.warning("train.tensorboard: tensorboard is not installed; logging to JSONL only")
        if wandb:
            try:
                import wandb as wandb_lib

                self.wandb = wandb_lib.init(project=wandb_project, config=run_config, dir=str(self.dir))
            except ImportError:
                log.warning("train.wandb: wandb is not installed; logging to JSONL only")
        if progress:
            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True)

    def _write(self, name: str, row: dict) -> None:
        f = self._files[name]
        f.write(json.dumps(row) + "\n")
        f.flush()

    def step(self, row: dict) -> None:
        """One training log line: step, subtask, lr, losses, throughput."""
        if not self.enabled:
            return
        self._write(METRICS_FILE, row)
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
        if self.tb is not None:
            for k, v in scalars.items():
                tag = f"train/{row.get('subtask', 'main')}/{k}" if k.endswith("loss") else f"train/{k}"
                self.tb.add_scalar(tag, v, row["step"])
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in scalars.items()}, step=row["step"])
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{row.get('loss', float('nan')):.4f}",
                lr=f"{row.get('lr', 0.0):.2e}",
                it_s=f"{row.get('steps_per_s', 0.0):.2f}",
            )

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def eval(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._write(EVAL_FILE, {"step": step, **metrics})
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(f"val/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self.message(f"step {step}: val {shown}")

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            log.info(text)

    def close(self) -> None:
        if not self.enabled:
            return
        for f in self._files.values():
            f.close()
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


MAX_EVAL_PANELS = 22  # the evaluation metrics drawn (in name order), after dropping constant ones


def plot_curves(output_dir: str | Path) -> Path | None:
    """``curves.png``: loss per sub-task, lr, and each evaluation metric against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = Path(output_dir)
    rows = read_jsonl(d / METRICS_FILE) if (d / METRICS_FILE).exists() else []
    evals = read_jsonl(d / EVAL_FILE) if (d / EVAL_FILE).exists() else []
    if not rows and not evals:
        return None
    eval_keys = sorted({k for r in evals for k in r if k != "step"})
    # a metric that never changes (chance levels, counts) is noise on a chart
    eval_keys = [k for k in eval_keys if len({r.get(k) for r in evals if k in r}) > 1 or len(evals) == 1]
    eval_keys = eval_keys[:MAX_EVAL_PANELS]
    n = 2 + len(eval_keys)
    cols = min(n, 4)
    grid_rows = math.ceil(n / cols)
    fig, grid = plt.subplots(grid_rows, cols, figsize=(4.2 * cols, 3.2 * grid_rows), squeeze=False)
    axes = [list(grid.flat)]
    for ax in axes[0][n:]:
        ax.set_visible(False)
    ax_loss, ax_lr = axes[0][0], axes[0][1]
    for sub in sorted({r.get("subtask", "main") for r in rows}):
        pts = [(r["step"], r["loss"]) for r in rows if r.get("subtask", "main") == sub and _finite(r["loss"])]
        if pts:
            ax_loss.plot(*zip(*pts), label=sub, lw=1)
    ax_loss.set(title="training loss", xlabel="step")
    if ax_loss.get_lines():
        ax_loss.legend(fontsize=7)
    if rows:
        ax_lr.plot([r["step"] for r in rows], [r["lr"] for r in rows], lw=1)
    ax_lr.set(title="learning rate", xlabel="step")
    for ax, key in zip(axes[0][2:], eval_keys):
        pts = [(r["step"], r[key]) for r in evals if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), marker="o", lw=1)
        ax.set(title=f"val {key}", xlabel="step")
    fig.tight_layout()
    out = d / CURVES_FILE
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
