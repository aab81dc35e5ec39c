"""The training loop shared by every recipe.

A recipe supplies a model, an optimizer, a loader whose batch sampler can `set_epoch`/`set_skip`, a
`loss_fn(model, batch) -> (mean_loss, n_items)` and an `eval_fn(model) -> metrics`. The engine does the rest:
device placement, DDP, autocast and GradScaler, gradient accumulation and clipping, per-step schedulers,
progress bars, metrics.jsonl and TensorBoard, atomic checkpoints (latest every epoch and every N steps, best
by a metric) and exact resume, mid-epoch included.

Stopping early (`train.stopping`): SIGTERM, SIGUSR1 or one Ctrl-C ends training at the next optimizer-step
boundary with a mid-epoch snapshot in latest.pt, then `RunStopped` is raised (the CLI exits with its code);
`EngineConfig.max_minutes` ends it at the first step boundary after the budget, evaluates and saves as at an
epoch end, and `fit` returns normally with `stopped_by="time budget"`. Under DDP all ranks stop after the same
step. A checkpoint that cannot be written is one `RunWriteError` line on every rank.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from pytorch_in_action.errors import PiaError, RunStopped
from pytorch_in_action.train.atomic import RunWriteError, guarded_write
from pytorch_in_action.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from pytorch_in_action.train.distributed import DistEnv
from pytorch_in_action.train.precision import AMP_CHOICES, autocast_ctx, make_grad_scaler, resolve_amp
from pytorch_in_action.train.run import RunDir
from pytorch_in_action.train.stopping import StopSignals, TimeBudget, agreed_stop

LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, int]]
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class EngineConfig:
    epochs: int
    amp: str = "off"  # "off" | "bf16" | "fp16" | "auto" (resolved once by the Engine, the same on every rank)
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    accum_steps: int = 1  # micro-batches per optimizer step
    ckpt_every_steps: int = 0  # also write latest.pt every N optimizer steps (0: at epoch ends only)
    eval_every_steps: int = 0  # also evaluate every N optimizer steps (0: at epoch ends only)
    best_metric: str | None = None  # e.g. "val_top1": best.pt is written when it improves
    best_mode: str = "max"
    progress: bool = True
    log_every_steps: int = 10  # TensorBoard train/loss and train/lr every N optimizer steps
    items_name: str = "items"  # metrics.jsonl reports f"{items_name}_per_sec"
    max_minutes: float = 0.0  # time budget of fit(): stop at the first optimizer step after it, evaluate, save (0: none)
    stop_on_signals: bool = True  # SIGTERM / SIGUSR1 / first SIGINT: snapshot at the next step, then RunStopped
    extra_state: dict[str, Any] = field(default_factory=dict)  # stored in checkpoints as is


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class Engine:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, train_loader, *, config: EngineConfig,
                 dist: DistEnv, loss_fn: LossFn, eval_fn: EvalFn | None = None, run: RunDir | None = None,
                 scheduler=None, meta: dict[str, Any] | None = None):
        # "auto" is measured per process; every rank trains in rank 0's choice so the replicas stay alike
        self.amp = dist.broadcast_object(resolve_amp(config.amp, dist.device))
        sampler = train_loader.batch_sampler
        if not (hasattr(sampler, "set_epoch") and hasattr(sampler, "set_skip")):
            raise TypeError("train_loader.batch_sampler must provide set_epoch() and set_skip()")
        self.model = model.to(dist.device)
        self.module = self.model  # what the loss sees: DDP-wrapped when distributed
        if dist.is_distributed:
            ids = [dist.device.index] if dist.device.type == "cuda" else None
            self.module = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer, self.scheduler, self.loader = optimizer, scheduler, train_loader
        self.cfg, self.dist, self.run = config, dist, run
        self.loss_fn, self.eval_fn, self.meta = loss_fn, eval_fn, meta or {}
        self.scaler = make_grad_scaler(dist.device, self.amp)
        # progress, all restored on resume
        self.epoch = 0  # current epoch (0-based)
        self.batch_in_epoch = 0  # batches of the current epoch already trained
        self.global_step = 0  # optimizer steps
        self.best: float | None = None
        self.loss_sum = 0.0  # sum of per-item losses in the current epoch (this rank)
        self.items = 0  # items seen in the current epoch (this rank)
        self.history: list[dict[str, Any]] = []
        self.stopped_by: str | None = None  # "time budget" when fit() ended on the budget (None: ran to the end)

    # -- checkpoints -------------------------------------------------------------------------------------
    def _rng_states(self) -> list[dict[str, Any]]:
        """Every rank's RNG state (collective: all ranks must call it), so dropout resumes per rank."""
        mine = capture_rng_state()
        if not self.dist.is_distributed:
            return [mine]
        states: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(states, mine)
        return states

    def state_dict(self, rng_states: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        rng_states = rng_states or [capture_rng_state()]
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "amp": self.amp,  # the resolved choice: a resumed `--amp auto` run keeps it
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "best": self.best,
            "loss_sum": self.loss_sum,
            "items": self.items,
            "rng": rng_states[0],
            "rng_per_rank": rng_states,
            "meta": self.meta,
            "extra": self.cfg.extra_state,
        }

    def save(self, best: bool = False) -> None:
        """Write latest.pt (and best.pt when asked) on the main rank; all ranks wait for it and, when it fails,
        all raise the same `RunWriteError` (the previous files stay as they were)."""
        rng_states = self._rng_states()
        error = None
        if self.run is not None and self.dist.is_main:
            try:
                save_checkpoint(self.run.latest, self.state_dict(rng_states))
                if best:
                    tmp = self.run.best.with_name(".best.pt.tmp-copy")
                    with guarded_write(self.run.best, tmp):
                        shutil.copyfile(self.run.latest, tmp)
                        tmp.replace(self.run.best)
            except RunWriteError as err:
                error = str(err)
        if self.dist.is_distributed:
            error = self.dist.broadcast_object(error)  # also the barrier: the other ranks wait for the files
        if error is not None:
            raise RunWriteError(error)

    def load(self, path: str | Path) -> None:
        state = load_checkpoint(path, map_location=self.dist.device)
        if "model" not in state or "optimizer" not in state:
            raise PiaError(f"{path} is not a training checkpoint of this project (no model/optimizer state)")
        for key, want in self.meta.items():
            have = state.get("meta", {}).get(key)
            if have != want:
                raise PiaError(f"checkpoint {path} was made with {key}={have!r}, this run has {key}={want!r}")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise PiaError(f"checkpoint {path} does not fit this model: {str(err).splitlines()[0]}") from None
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.cfg.amp == "auto" and state.get("amp") in AMP_CHOICES and state["amp"] != self.amp:
            try:  # "auto" is measured; a resumed run keeps the dtype it was trained in where the device allows
                self.amp = resolve_amp(state["amp"], self.dist.device)
                self.scaler = make_grad_scaler(self.dist.device, self.amp)
            except PiaError:
                pass
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch = state["epoch"], state["batch_in_epoch"]
        self.global_step, self.best = state["global_step"], state["best"]
        self.loss_sum, self.items = state["loss_sum"], state["items"]
        per_rank = state.get("rng_per_rank") or [state["rng"]]
        # same world size: every rank continues its own stream; otherwise all start from rank 0's
        restore_rng_state(per_rank[self.dist.rank] if len(per_rank) == self.dist.world_size else per_rank[0])
        if self.run is not None:
            self.run.truncate_metrics(self.global_step)

    # -- evaluation --------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        if self.eval_fn is None:
            return {}
        self.model.eval()
        try:
            with torch.no_grad(), autocast_ctx(self.dist.device, self.amp):
                return dict(self.eval_fn(self.model))
        finally:
            self.model.train()

    def _improved(self, metrics: dict[str, float]) -> bool:
        key = self.cfg.best_metric
        if key is None or key not in metrics:
            return False
        value = metrics[key]
        better = self.best is None or (value > self.best if self.cfg.best_mode == "max" else value < self.best)
        if better:
            self.best = value
        return better

    def _record(self, metrics: dict[str, float], train_loss: float | None, rate: float | None) -> dict[str, Any]:
        # 1-based number of the epoch this evaluation belongs to (at an epoch end self.epoch already counts it)
        record: dict[str, Any] = {"epoch": self.epoch + (1 if self.batch_in_epoch else 0), "step": self.global_step}
        if train_loss is not None:
            record["train_loss"] = train_loss
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        if rate is not None:
            record[f"{self.cfg.items_name}_per_sec"] = rate
        record.update(metrics)
        self.history.append(record)
        if self.run is not None:
            self.run.log_metrics(record)
        return record

    # -- training ----------------------------------------------------------------------------------------
    def _epoch_train_loss(self) -> float:
        t = self.dist.all_reduce_sum(torch.tensor([self.loss_sum, float(self.items)], dtype=torch.float64,
                                                  device=self.dist.device))
        return float(t[0] / t[1]) if t[1] > 0 else float("nan")

    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        """Train until `config.epochs` (or the time budget), resuming from `resume` when given; return a summary.

        Raises `RunStopped` after saving a snapshot when SIGTERM, SIGUSR1 or a first SIGINT arrives."""
        if resume is not None:
            self.load(resume)
        signals = StopSignals() if self.cfg.stop_on_signals else contextlib.nullcontext(StopSignals())
        try:
            with signals as received:
                return self._fit(received, TimeBudget(self.cfg.max_minutes))
        finally:
            if self.run is not None:
                self.run.close()

    def _where(self, n_batches: int) -> str:
        return f"step {self.global_step} (epoch {self.epoch + 1}, batch {self.batch_in_epoch}/{n_batches})"

    def _stop(self, reason: str, n_batches: int, saved: bool) -> None:
        """End training at this step boundary: on a signal save (unless the epoch end just did) and raise
        `RunStopped`; on the time budget only report (the caller has evaluated and saved)."""
        if reason != "time budget":
            if not saved:
                self.save()
            if self.run is None:
                raise RunStopped(f"stopped by {reason} at {self._where(n_batches)} (no run folder: nothing saved)")
            raise RunStopped(f"stopped by {reason} at {self._where(n_batches)}; snapshot saved to {self.run.latest}; "
                             f"continue with --resume")
        self.stopped_by = reason
        if self.dist.is_main:
            tqdm.write(f"time budget of {self.cfg.max_minutes:g} min spent: stopped at {self._where(n_batches)} "
                       f"after evaluating and saving; --resume continues the run")

    def _fit(self, signals: StopSignals, budget: TimeBudget) -> dict[str, Any]:
        cfg, dist = self.cfg, self.dist
        sampler = self.loader.batch_sampler
        n_batches = len(sampler)
        if n_batches == 0:
            raise PiaError("the training set is smaller than one batch; lower --batch-size")
        accum = max(1, cfg.accum_steps)
        show = cfg.progress and dist.is_main
        self.model.train()
        last: dict[str, Any] = {}
        budget.start()
        while self.epoch < cfg.epochs:
            epoch = self.epoch
            sampler.set_epoch(epoch)
            sampler.set_skip(self.batch_in_epoch)
            bar = tqdm(total=n_batches, initial=self.batch_in_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not show, dynamic_ncols=True, leave=False)
            loss_acc = torch.zeros((), dtype=torch.float64, device=dist.device)
            items_acc = 0
            start, epoch_items = time.perf_counter(), 0
            stop = None
            for i, batch in enumerate(self.loader, start=self.batch_in_epoch):
                batch = to_device(batch, dist.device)
                sync = (i + 1) % accum == 0 or i + 1 == n_batches
                no_sync = self.module.no_sync() if (dist.is_distributed and not sync) else contextlib.nullcontext()
                with no_sync:
                    with autocast_ctx(dist.device, self.amp):
                        loss, n = self.loss_fn(self.module, batch)
                    self.scaler.scale(loss / accum).backward()
                loss_acc += loss.detach().double() * n
                items_acc += n
                epoch_items += n
                bar.update(1)
                if not sync:
                    continue
                if cfg.grad_clip > 0:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                if self.scheduler is not None:
                    self.scheduler.step()
                self.global_step += 1
                self.batch_in_epoch = i + 1
                self.loss_sum += float(loss_acc)
                self.items += items_acc
                loss_acc.zero_()
                items_acc = 0
                if cfg.log_every_steps and self.global_step % cfg.log_every_steps == 0:
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise PiaError(f"the loss became {value} at step {self.global_step}; lower the learning rate")
                    bar.set_postfix(loss=f"{value:.4f}")
                    if self.run is not None:
                        self.run.scalar("train/loss", value, self.global_step)
                        self.run.scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.global_step)
                stop = agreed_stop(signals, budget, dist)  # a collective: every rank asks after every step
                mid_epoch = i + 1 < n_batches
                if stop is not None and mid_epoch:
                    bar.close()
                    if stop == "time budget":  # evaluate and save as at an epoch end, then return
                        metrics = self.evaluate()
                        last = self._record(metrics, self._epoch_train_loss(), None)
                        self.save(best=self._improved(metrics))
                    self._stop(stop, n_batches, saved=stop == "time budget")
                    return self._summary(last)
                if cfg.eval_every_steps and self.global_step % cfg.eval_every_steps == 0 and mid_epoch:
                    metrics = self.evaluate()
                    last = self._record(metrics, None, None)
                    self.save(best=self._improved(metrics))
                elif cfg.ckpt_every_steps and self.global_step % cfg.ckpt_every_steps == 0 and mid_epoch:
                    self.save()
            bar.close()
            elapsed = time.perf_counter() - start
            rate_t = dist.all_reduce_sum(torch.tensor(float(epoch_items), device=dist.device))
            rate = float(rate_t) / elapsed if elapsed > 0 else float("nan")
            train_loss = self._epoch_train_loss()
            self.epoch, self.batch_in_epoch, self.loss_sum, self.items = epoch + 1, 0, 0.0, 0
            metrics = self.evaluate()
            last = self._record(metrics, train_loss, rate)
            self.save(best=self._improved(metrics))
            if dist.is_main:
                shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in last.items() if k not in {"epoch", "lr"})
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}  {shown}")
            if stop is not None and self.epoch < cfg.epochs:  # asked during the epoch's last step: saved above
                self._stop(stop, n_batches, saved=True)
                break
        return self._summary(last)

    def _summary(self, last: dict[str, Any]) -> dict[str, Any]:
        return {"last": last, "best": self.best, "history": self.history, "global_step": self.global_step,
                "stopped_by": self.stopped_by}
