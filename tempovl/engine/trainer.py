"""The training engine: one loop for every task of both model families.

The engine reads only the `train` section of the config. It builds the task from the registry, asks it
for datasets and collate functions per sub-task, draws one sub-task per optimisation step (the same on
every rank), sums the task's ``*_loss`` outputs, and does the rest: DDP / FSDP, autocast, gradient
accumulation, AdamW with schedules, non-finite-loss skipping, evaluation, logging and checkpoints that
resume exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tempovl.engine import checkpoint as ckpt
from tempovl.engine import distributed as D
from tempovl.engine.config import TrainConfig, init_weights_file, train_config
from tempovl.engine.data import SubtaskStream
from tempovl.engine.logging import MetricLogger, plot_curves
from tempovl.engine.optim import build_optimizer, build_scheduler
from tempovl.errors import ConfigError, TempovlError

log = logging.getLogger("tempovl.train")


class TrainingDivergedError(TempovlError):
    """The loss was NaN/inf for more than ``train.max_bad_steps`` steps in a row."""


@dataclass
class TrainResult:
    step: int
    interrupted: bool
    checkpoint: Path | None
    best: dict | None = None
    bad_steps: int = 0
    eval_history: list[dict] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def pick_subtask(ratios: dict[str, float], seed: int, step: int) -> str:
    """The sub-task of optimisation step `step`: a draw from an RNG seeded by (seed, step), same on all ranks."""
    names = list(ratios)
    if len(names) == 1:
        return names[0]
    u = np.random.default_rng([seed, step]).random()
    total = sum(ratios.values())
    acc = 0.0
    for name in names:
        acc += ratios[name] / total
        if u < acc:
            return name
    return names[-1]


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class Trainer:
    """Builds everything from a whole config; :meth:`fit` runs to ``train.max_steps`` or a signal."""

    def __init__(self, cfg: dict, task: nn.Module | None = None, resume: bool = False):
        self.cfg = cfg
        self.tc: TrainConfig = train_config(cfg)
        tc = self.tc
        self.resume = resume or tc.resume
        self.out = Path(tc.output_dir)
        self.dist = D.init_distributed(tc.device, need_group=tc.fsdp)
        self.device = self.dist.device
        self.rank, self.world = self.dist.rank, self.dist.world_size
        self.is_main = self.rank == 0
        self.global_batch = self.world * tc.batch_size * tc.grad_accum

        resume_from = ckpt.find_resumable(self.out) if self.resume else None
        if not self.resume and ckpt.list_checkpoints(self.out):
            raise ConfigError(
                f"train.output_dir: {self.out} already holds checkpoints; "
                "pass --resume to continue that run or choose another --out"
            )
        if self.resume and resume_from is None and self.is_main:
            log.info(f"no checkpoint in {self.out} to resume from; starting from scratch")
        self._set_determinism()
        seed_everything(tc.seed)  # the same initial weights on every rank

        if task is None:
            from tempovl.registry import build_task

            task = build_task(cfg)
        self.task = task.to(self.device)
        self.ratios = self._subtask_ratios()
        if resume_from is not None:
            ckpt.load_into(self.task, resume_from / ckpt.MODEL_FILE, mode="strict")
        elif tc.init is not None:
            self._init_weights(tc.init)

        self.model = self._wrap(self.task)
        opt_model = self.model if tc.fsdp else self.task
        self.optimizer = build_optimizer(opt_model, tc, self.task.lr_multipliers())
        self.scheduler = build_scheduler(self.optimizer, tc)
        fp16 = tc.precision == "fp16"
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.precision)
        self.forward = torch.compile(self.model) if tc.compile else self.model

        self.step = 0
        self.bad_in_row = 0
        self.bad_total = 0
        self.best: dict | None = None
        self.eval_history: list[dict] = []
        positions = {name: 0 for name in self.ratios}
        self._resume_rng: dict | None = None
        if resume_from is not None:
            positions = self._load_trainer_state(resume_from, positions)
        self.streams = {
            name: SubtaskStream(
                self.task.dataset("train", name),
                self.task.collate(name),
                name,
                tc.batch_size,
                self.rank,
                self.world,
                tc.seed,
                tc.num_workers,
                positions[name],
            )
            for name in self.ratios
        }
        self.resumed_from = resume_from
        self._stop_signal: int | None = None

    # ------------------------------------------------------------------------------------- set-up
    def _set_determinism(self) -> None:
        if self.tc.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True

    def _subtask_ratios(self) -> dict[str, float]:
        ratios = dict(self.task.subtasks())
        if not ratios or any(not (isinstance(v, (int, float)) and v >= 0) for v in ratios.values()):
            raise ConfigError(f"task sub-task ratios must be non-negative numbers, got {ratios}")
        ratios = {k: float(v) for k, v in ratios.items() if v > 0}
        if not ratios:
            raise ConfigError("task sub-task ratios are all zero: nothing to train")
        return ratios

    def _init_weights(self, path: str) -> None:
        weights = init_weights_file(path)
        mode = "strict" if self.tc.init_strict else "partial" if self.tc.init_partial else "fit"
        missing, unexpected = ckpt.load_into(self.task, weights, mode=mode)
        if self.is_main:
            show = (lambda keys: ", ".join(keys) or "none") if mode == "partial" else ckpt._show
            log.info(
                f"initialised from {weights} ({mode}): {len(missing)} keys not loaded (left at their "
                f"initial values) {show(missing)}; {len(unexpected)} unused or mis-shaped {show(unexpected)}"
            )

    def _wrap(self, task: nn.Module) -> nn.Module:
        tc = self.tc
        if tc.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
            from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

            policy = size_based_auto_wrap_policy if sum(p.numel() for p in task.parameters()) > 1e6 else None
            return FSDP(task, device_id=self.device, use_orig_params=True, auto_wrap_policy=policy)
        if self.world > 1:
            find_unused = tc.find_unused_parameters
            if find_unused is None:
                find_unused = len(self.ratios) > 1
            ids = [self.device.index] if self.device.type == "cuda" else None
            return nn.parallel.DistributedDataParallel(
                task, device_ids=ids, find_unused_parameters=find_unused
            )
        return task

    # -------------------------------------------------------------------------------- state I/O
    def _model_state(self) -> dict[str, torch.Tensor]:
        if self.tc.fsdp:
            from torch.distributed.fsdp import FullStateDictConfig, StateDictType
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            full = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
            with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT, full):
                return self.model.state_dict()
        return self.task.state_dict()

    def _optim_state(self) -> dict:
        if self.tc.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            return FSDP.optim_state_dict(self.model, self.optimizer)
        return self.optimizer.state_dict()

    def _trainer_state(self) -> dict:
        return {
            "step": self.step,
            "optimizer": self._optim_state(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": D.all_gather_object(rng_state()),
            "data_positions": {name: s.position for name, s in self.streams.items()},
            "bad_in_row": self.bad_in_row,
            "bad_total": self.bad_total,
            "best": self.best,
            "eval_history": self.eval_history,
            "world_size": self.world,
            "global_batch": self.global_batch,
        }

    def _load_trainer_state(self, path: Path, positions: dict[str, int]) -> dict[str, int]:
        state = ckpt.load_trainer_state(path)
        osd = state["optimizer"]
        if self.tc.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            osd = FSDP.optim_state_dict_to_load(self.model, self.optimizer, osd)
        self.optimizer.load_state_dict(osd)
        # the schedule's shape comes from the current config (e.g. a longer run); only its position is restored
        sched = dict(state["scheduler"], lr_lambdas=[None] * len(self.optimizer.param_groups))
        self.scheduler.load_state_dict(sched)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.bad_in_row, self.bad_total = state["bad_in_row"], state["bad_total"]
        self.best, self.eval_history = state["best"], list(state["eval_history"])
        rngs = state["rng"]
        self._resume_rng = rngs[self.rank] if self.rank < len(rngs) else None
        if state.get("global_batch") != self.global_batch and self.is_main:
            log.warning(
                f"resuming with global batch {self.global_batch} (checkpoint used "
                f"{state.get('global_batch')}): the data order continues but results will differ"
            )
        unknown = set(state["data_positions"]) - set(positions)
        if unknown:
            raise ConfigError(f"{path}: checkpoint has sub-tasks {sorted(unknown)} this task does not have")
        return {**positions, **state["data_positions"]}

    def save(self, best: bool = False) -> Path:
        """Checkpoint the current step (collective: every rank must call it)."""
        state = self._trainer_state()
        model_state = self._model_state()
        path = self.out / ckpt.ckpt_name(self.step)
        if self.is_main:
            path = ckpt.save_checkpoint(self.out, self.step, model_state, self.cfg, state, self.tc.keep_last)
            if best:
                ckpt.copy_checkpoint(path, self.out / "best")
        D.barrier()
        return path

    # -------------------------------------------------------------------------------------- loop
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def train_step(self) -> dict[str, Any]:
        """One optimisation step (all micro-steps). Returns the rank-local outputs and flags."""
        tc = self.tc
        subtask = pick_subtask(self.ratios, tc.seed, self.step)
        stream = self.streams[subtask]
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        for micro in range(tc.grad_accum):
            batch = to_device(stream.next_batch(), self.device)
            last = micro == tc.grad_accum - 1
            no_sync = getattr(self.model, "no_sync", None)
            sync_ctx = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
            with sync_ctx:
                with self._autocast():
                    out = self.forward(batch, subtask)
                losses = [v for k, v in out.items() if k.endswith("_loss")]
                if not losses:
                    raise RuntimeError(f"task.forward returned no '*_loss' output for sub-task {subtask!r}")
                loss = torch.stack([v.float() for v in losses]).sum()
                scaled = loss / tc.grad_accum
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            for k, v in out.items():
                if isinstance(v, torch.Tensor) and v.numel() == 1:
                    sums[k] = sums.get(k, 0.0) + v.detach().float().reshape(()) / tc.grad_accum
            sums["loss"] = sums.get("loss", 0.0) + loss.detach() / tc.grad_accum

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = tc.grad_clip if tc.grad_clip is not None else math.inf
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if tc.fsdp:
            grad_norm = self.model.clip_grad_norm_(max_norm)
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        values = dict(zip(sums, torch.stack(list(sums.values())).tolist()))
        grad_norm = float(grad_norm)
        bad_local = not math.isfinite(values["loss"]) or (
            self.scaler is None and not math.isfinite(grad_norm)
        )
        stop_local = self._stop_signal is not None
        bad, stop = (v > 0 for v in D.all_reduce_max([float(bad_local), float(stop_local)]))
        lr = self.optimizer.param_groups[0]["lr"] / self.optimizer.param_groups[0].get("lr_mult", 1.0)
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.update(self.scaler.get_scale() * 0.5)
            self.bad_in_row += 1
            self.bad_total += 1
        else:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_in_row = 0
        with warnings.catch_warnings():  # a skipped first step makes torch warn about the call order
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        self.step += 1
        return {
            "subtask": subtask,
            "values": values,
            "grad_norm": grad_norm,
            "lr": lr,
            "bad": bad,
            "stop": stop,
        }

    def evaluate(self) -> dict[str, float]:
        """``task.evaluate("val")`` on rank 0, broadcast to every rank; updates the best metric."""
        metrics: dict[str, float] = {}
        if self.is_main:
            self.task.eval()
            with self._autocast():
                metrics = {k: float(v) for k, v in (self.task.evaluate("val") or {}).items()}
            self.task.train()
        metrics = D.broadcast_object(metrics)
        if metrics:
            self.eval_history.append({"step": self.step, **metrics})
        return metrics

    def _improves(self, metrics: dict[str, float]) -> bool:
        name, mode = self.tc.best_metric.name, self.tc.best_metric.mode
        if name not in metrics or not math.isfinite(metrics[name]):
            return False
        value = metrics[name]
        old = None if self.best is None else self.best["value"]
        if old is None or (value < old if mode == "min" else value > old):
            self.best = {"name": name, "mode": mode, "value": value, "step": self.step}
            return True
        return False

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:  # a second Ctrl-C: stop now, without saving
            raise KeyboardInterrupt
        self._stop_signal = signum
        if self.is_main:
            log.warning(f"got {signal.Signals(signum).name}: finishing this step, saving, then stopping")

    def fit(self) -> TrainResult:
        """Train until ``train.max_steps`` (or SIGINT/SIGTERM: checkpoint and return cleanly)."""
        tc = self.tc
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)
        else:
            seed_everything(tc.seed + 1000 * self.rank)
        logger = MetricLogger(
            self.out,
            self.is_main,
            self.step,
            tc.max_steps,
            progress=tc.progress,
            tensorboard=tc.tensorboard,
            wandb=tc.wandb,
            wandb_project=tc.wandb_project,
            run_config=self.cfg,
        )
        if self.is_main:
            n_params = sum(p.numel() for p in self.task.parameters())
            start = f"resuming from {self.resumed_from}" if self.resumed_from else "starting"
            logger.message(
                f"{start} at step {self.step}/{tc.max_steps}: {n_params:,} parameters, world size "
                f"{self.world}, global batch {self.global_batch}, sub-tasks {self.ratios}"
            )
        handlers = self._install_signal_handlers()
        interrupted = False
        last_ckpt = self.resumed_from
        try:
            t_last, steps_since = time.perf_counter(), 0
            while self.step < tc.max_steps:
                r = self.train_step()
                steps_since += 1
                logger.advance()
                if r["bad"]:
                    logger.message(f"step {self.step}: non-finite loss/gradient in {r['subtask']}; skipped")
                    if self.bad_in_row > tc.max_bad_steps:
                        raise TrainingDivergedError(
                            f"the loss was not finite for {self.bad_in_row} steps in a row (up to step "
                            f"{self.step}, sub-task {r['subtask']!r}; train.max_bad_steps={tc.max_bad_steps}). "
                            f"Lower train.lr, enable train.grad_clip or check the data; the last good "
                            f"checkpoint is in {self.out}"
                        )
                final = self.step == tc.max_steps
                if self.step % tc.log_every == 0 or final or self.step == 1:
                    values = D.all_reduce_mean(r["values"])
                    dt = time.perf_counter() - t_last
                    sps = steps_since / dt if dt > 0 else 0.0
                    row = {"step": self.step, "subtask": r["subtask"], **values, "lr": r["lr"]}
                    row.update(
                        grad_norm=r["grad_norm"], steps_per_s=sps, samples_per_s=sps * self.global_batch
                    )
                    row["bad_steps"] = self.bad_total
                    logger.step(row)
                    t_last, steps_since = time.perf_counter(), 0
                improved = False
                if (tc.eval_every and self.step % tc.eval_every == 0) or final:
                    metrics = self.evaluate()
                    if metrics:
                        logger.eval(self.step, metrics)
                        improved = self._improves(metrics)
                if improved or final or r["stop"] or (tc.save_every and self.step % tc.save_every == 0):
                    last_ckpt = self.save(best=improved)
                if r["stop"]:
                    interrupted = True
                    logger.message(
                        f"stopped at step {self.step}; checkpoint {last_ckpt}; continue with --resume"
                    )
                    break
        finally:
            self._restore_signal_handlers(handlers)
            logger.close()
        if self.is_main and tc.curves:
            plot_curves(self.out)
        return TrainResult(self.step, interrupted, last_ckpt, self.best, self.bad_total, self.eval_history)

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    def _restore_signal_handlers(self, handlers: dict) -> None:
        for sig, h in handlers.items():
            signal.signal(sig, h)


def train(cfg: dict, resume: bool = False, task: nn.Module | None = None) -> TrainResult:
    """Train a whole config (see :class:`Trainer`); under torchrun every rank calls this."""
    return Trainer(cfg, task=task, resume=resume).fit()
