"""Classification metrics: top-k counts (summed across ranks before dividing) and, from predictions,
accuracy / F1 computed by scikit-learn (never by hand)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at the class count)."""
    maxk = min(max(ks), logits.shape[-1])
    pred = logits.topk(maxk, dim=-1).indices  # (B, maxk)
    hit = pred.eq(target.unsqueeze(-1))  # (B, maxk)
    return [int(hit[:, : min(k, maxk)].any(dim=-1).sum()) for k in ks]


def classification_metrics(labels: Sequence[int], preds: Sequence[int], num_labels: int,
                           prefix: str = "val_") -> dict[str, float]:
    """Accuracy, F1 of the positive class (binary) or macro F1 (more classes) as `f1`, and macro F1."""
    from sklearn.metrics import accuracy_score, f1_score

    all_labels = list(range(num_labels))
    macro = f1_score(labels, preds, labels=all_labels, average="macro", zero_division=0)
    f1 = f1_score(labels, preds, pos_label=1, average="binary", zero_division=0) if num_labels == 2 else macro
    return {f"{prefix}accuracy": float(accuracy_score(labels, preds)), f"{prefix}f1": float(f1),
            f"{prefix}macro_f1": float(macro)}
