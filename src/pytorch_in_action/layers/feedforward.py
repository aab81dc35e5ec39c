"""The position-wise feed-forward network of a Transformer block: linear2(dropout(activation(linear1(x))))."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HF_ACTIVATIONS", "HF_ACTIVATIONS_INPLACE", "FeedForward", "feed_forward", "get_activation", "hf_activation"]

Activation = str | Callable[[Tensor], Tensor]


def get_activation(activation: Activation) -> Callable[[Tensor], Tensor]:
    """"relu" / "gelu" (as nn.Transformer accepts) or any callable."""
    if callable(activation):
        return activation
    if activation in ("relu", "gelu"):
        return getattr(F, activation)
    raise RuntimeError(f"activation should be 'relu', 'gelu' or a callable, not {activation!r}")


# The non-linearities of Hugging Face configs by their config names ("hidden_act", "activation_function").
# "gelu" is the exact erf form; "gelu_new" / "gelu_pytorch_tanh" the tanh approximation of the GPT-2 code.
# Module-level functions and partials only, so that a model holding one can be pickled (`torch.save(model)`).
HF_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def gelu_(x: Tensor) -> Tensor:
    return torch.ops.aten.gelu_(x)


def gelu_tanh_(x: Tensor) -> Tensor:
    return torch.ops.aten.gelu_(x, approximate="tanh")


def silu_(x: Tensor) -> Tensor:
    return F.silu(x, inplace=True)


# The same functions computed in place (same values, written into their input): for inference, where the
# input is a product's fresh output that nothing else needs.
HF_ACTIVATIONS_INPLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": gelu_,
    "gelu_new": gelu_tanh_,
    "gelu_pytorch_tanh": gelu_tanh_,
    "relu": torch.relu_,
    "silu": silu_,
    "swish": silu_,
    "tanh": torch.tanh_,
}


def hf_activation(name: str, inplace: bool = False) -> Callable[[Tensor], Tensor]:
    """The feed-forward non-linearity called `name` in a Hugging Face config (its in-place twin if asked)."""
    if name not in HF_ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; known: {', '.join(HF_ACTIVATIONS)}")
    return (HF_ACTIVATIONS_INPLACE if inplace else HF_ACTIVATIONS)[name]


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
