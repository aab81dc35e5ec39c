"""The position-wise feed-forward network of a Transformer block: linear2(dropout(activation(linear1(x))))."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action.errors import PiaError

__all__ = ["FeedForward", "feed_forward", "get_activation"]

Activation = str | Callable[[Tensor], Tensor]


def get_activation(activation: Activation) -> Callable[[Tensor], Tensor]:
    """"relu" / "gelu" (as nn.Transformer accepts) or any callable."""
    if callable(activation):
        return activation
    if activation in ("relu", "gelu"):
        return getattr(F, activation)
    raise PiaError(f"activation should be 'relu', 'gelu' or a callable, not {activation!r}")


def feed_forward(x: Tensor, linear1: nn.Linear, linear2: nn.Linear, activation: Callable[[Tensor], Tensor],
                 dropout: nn.Module) -> Tensor:
    """Applied to every position alone: (..., d_model) -> (..., dim_feedforward) -> (..., d_model)."""
    return linear2(dropout(activation(linear1(x))))


class FeedForward(nn.Module):
    """Stand-alone position-wise FFN; the Transformer layers hold `linear1`/`linear2` themselves (torch's keys)."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0, activation: Activation = "relu",
                 bias: bool = True) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.activation = get_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return feed_forward(x, self.linear1, self.linear2, self.activation, self.dropout)
