"""Learning-rate schedules, all stepped once per optimizer step.

Stepping per step with a schedule defined in steps avoids a classic bug: a per-epoch step size used with a
per-batch `scheduler.step()` collapses the learning rate to nearly zero within the first epoch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train.precision import autocast_ctx

SCHEDULES = ("constant", "step", "cosine", "warmup_cosine", "onecycle", "inverse_sqrt")


class _Factor:
    """A picklable lr multiplier f(step) (LambdaLR stores object state, not closures, in its state_dict)."""

    def __init__(self, name: str, total_steps: int, warmup_steps: int, step_size: int, gamma: float,
                 min_lr_ratio: float):
        self.name, self.total, self.warmup = name, max(1, total_steps), warmup_steps
        self.step_size, self.gamma, self.min_ratio = max(1, step_size), gamma, min_lr_ratio

    def __call__(self, step: int) -> float:
        if self.name == "inverse_sqrt":
            w = max(1, self.warmup)
            return min((step + 1) / w, math.sqrt(w / (step + 1)))
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.name == "constant":
            return 1.0
        if self.name == "step":
            return self.gamma ** ((step - self.warmup) // self.step_size)
        # cosine and warmup_cosine: from 1 down to min_ratio over the remaining steps
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup_steps: int = 0,
                    step_size: int = 0, gamma: float = 0.1, min_lr_ratio: float = 0.0) -> LRScheduler:
    """A per-step scheduler. `step_size` (for "step") and `warmup_steps` are in optimizer steps.

    "cosine" has no warmup unless `warmup_steps` is given; "warmup_cosine" defaults to 5% warmup.
    "onecycle" is torch's OneCycleLR peaking at the optimizer's lr.
    """
    if name not in SCHEDULES:
        raise PiaError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULES)}")
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(2, total_steps))
    if name == "warmup_cosine" and warmup_steps == 0:
        warmup_steps = max(1, total_steps // 20)
    if name == "step" and step_size == 0:
        step_size = max(1, total_steps // 3)
    return LambdaLR(optimizer, _Factor(name, total_steps, warmup_steps, step_size, gamma, min_lr_ratio))


def seconds_per_step(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, int]],
                     batches: Iterable[dict[str, torch.Tensor]], device: torch.device, amp: str = "off") -> float:
    """Mean wall seconds of one training step (forward, backward, AdamW update) of a copy of `model` over
    `batches`, after one untimed step. The model and the global RNG are left as they were, so the run itself is
    unchanged. A time budget divided by it is the number of steps a schedule defined in steps should span."""
    rng = torch.get_rng_state()
    probe = copy.deepcopy(model).to(device).train()
    opt = torch.optim.AdamW(probe.parameters(), lr=0.0)
    times = []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        start = time.perf_counter()
        with autocast_ctx(device, amp):
            loss, _ = loss_fn(probe, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    torch.set_rng_state(rng)
    if len(times) < 2:
        raise ValueError("seconds_per_step needs at least two batches (the first one is not timed)")
    return sum(times[1:]) / (len(times) - 1)

