"""Classification metrics as counts (so they can be summed across ranks before dividing)."""

from __future__ import annotations

import torch


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at the class count)."""
    maxk = min(max(ks), logits.shape[-1])
    pred = logits.topk(maxk, dim=-1).indices  # (B, maxk)
    hit = pred.eq(target.unsqueeze(-1))  # (B, maxk)
    return [int(hit[:, : min(k, maxk)].any(dim=-1).sum()) for k in ks]
