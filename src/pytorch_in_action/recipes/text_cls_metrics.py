"""Classification metrics for the text recipes, computed by scikit-learn from predictions (never by hand)."""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.metrics import accuracy_score, f1_score


def classification_metrics(labels: Sequence[int], preds: Sequence[int], num_labels: int,
                           prefix: str = "val_") -> dict[str, float]:
    """Accuracy, F1 of the positive class (binary) or macro F1 (more classes) as `f1`, and macro F1."""
    all_labels = list(range(num_labels))
    macro = f1_score(labels, preds, labels=all_labels, average="macro", zero_division=0)
    f1 = f1_score(labels, preds, pos_label=1, average="binary", zero_division=0) if num_labels == 2 else macro
    return {f"{prefix}accuracy": float(accuracy_score(labels, preds)), f"{prefix}f1": float(f1),
            f"{prefix}macro_f1": float(macro)}
