"""A small BatchNorm CNN for small images (digits, CIFAR-sized inputs): fast on a CPU, accurate enough to matter."""

from __future__ import annotations

import torch
from torch import nn


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(min(8, channels), channels)


def _block(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        _norm(norm, c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        _norm(norm, c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three conv stages (each halves the resolution) and a global-average-pooled linear head.

    `features` is the backbone and `classifier` the head, so transfer learning can freeze or replace either.
    Any input size from 8x8 up works thanks to the adaptive pooling. `norm="group"` uses GroupNorm, whose
    per-sample statistics make a data-parallel run compute exactly what one process with the whole batch does.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32, dropout: float = 0.1,
                 norm: str = "batch"):
        super().__init__()
        if norm not in {"batch", "group"}:
            raise ValueError(f"norm must be 'batch' or 'group', not {norm!r}")
        w = width
        self.features = nn.Sequential(
            _block(in_channels, w, norm),
            nn.MaxPool2d(2),
            _block(w, 2 * w, norm),
            nn.MaxPool2d(2),
            _block(2 * w, 4 * w, norm),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, 4w)
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
