"""Optimizers with the usual weight-decay split: no decay on biases and normalisation weights."""

from __future__ import annotations

import torch
from torch import nn

from pytorch_in_action.errors import PiaError


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices/kernels (decayed) and 1-d tensors such as biases and norm scales (not decayed)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, name: str = "sgd", lr: float = 0.1, weight_decay: float = 0.0,
                    momentum: float = 0.9, nesterov: bool = False,
                    betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    raise PiaError(f"unknown optimizer {name!r}; choose from sgd, adamw")
