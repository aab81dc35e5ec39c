"""One time step of the Elman RNN, the LSTM and the GRU, and the cell modules `RNNCell`, `LSTMCell`, `GRUCell`.

The step functions take the *input projection* `gi = x @ W_ih^T + b_ih` already computed, so a whole sequence can
project all its time steps with one GEMM and keep only the recurrent GEMM `h @ W_hh^T` inside the time loop.
Gate order and parameter names are torch's: LSTM (i, f, g, o), GRU (r, z, n).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]  # (h,) for RNN and GRU, (h, c) for LSTM


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x @ weight^T + bias for a 2-D x, as one fused GEMM when there is a bias."""
    return x @ weight.t() if bias is None else torch.addmm(bias, x, weight.t())


def rnn_tanh_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
    """Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return (torch.tanh(gi + linear(state[0], w_hh, b_hh)),)


def rnn_relu_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
    """Elman RNN with ReLU: h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return (torch.relu(gi + linear(state[0], w_hh, b_hh)),)


def lstm_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
    """LSTM: gates i, f, o squash to (0, 1), candidate g to (-1, 1); c' = f*c + i*g, h' = o*tanh(c')."""
    h, c = state
    gates = gi + linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
    """GRU as torch computes it: the reset gate scales the *projected* hidden part of n, r * (h W_hn^T + b_hn)."""
    h = state[0]
    gh = linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return ((1 - z) * n + z * h,)


STEPS = {"RNN_TANH": rnn_tanh_step, "RNN_RELU": rnn_relu_step, "LSTM": lstm_step, "GRU": gru_step}
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def rnn_mode(nonlinearity: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def init_uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch's RNN init: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


class _CellBase(nn.Module):
    """Parameters `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` laid out as torch's cells."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool, device=None, dtype=None) -> None:
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        gh = GATES[mode] * hidden_size
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size, **factory))
        self.bias_ih = nn.Parameter(torch.empty(gh, **factory)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(gh, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_uniform_(self, self.hidden_size)

    def _step(self, input: Tensor, state: State | None) -> State:
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input  # (B, I)
        n_state = 2 if self.mode == "LSTM" else 1
        if state is None:
            state = (x.new_zeros(x.shape[0], self.hidden_size),) * n_state
        elif unbatched:
            state = tuple(s.unsqueeze(0) for s in state)
        gi = linear(x, self.weight_ih, self.bias_ih)
        new = STEPS[self.mode](gi, state, self.weight_hh, self.bias_hh)
        return tuple(s.squeeze(0) for s in new) if unbatched else new

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(_CellBase):
    """Twin of `nn.RNNCell`: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None) -> None:
        super().__init__(rnn_mode(nonlinearity), input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, None if hx is None else (hx,))[0]


class LSTMCell(_CellBase):
    """Twin of `nn.LSTMCell`: returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        h, c = self._step(input, hx)
        return h, c


class GRUCell(_CellBase):
    """Twin of `nn.GRUCell`."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, None if hx is None else (hx,))[0]
