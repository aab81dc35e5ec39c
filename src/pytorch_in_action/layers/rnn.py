"""Multi-layer, optionally bidirectional RNN / LSTM / GRU with torch.nn's arguments, parameter names and outputs.

An `nn.LSTM` state_dict loads as is (`weight_ih_l0`, `weight_hh_l0_reverse`, `bias_ih_l1`...). Variable-length
batches come either as a `PackedSequence` (a PackedSequence comes back, as in torch) or as a padded batch plus
`lengths`: outputs past a sequence's end are zero and its final state is taken at its own last element (the reverse
direction starts there). Per layer and direction, one GEMM projects every time step's input; only the recurrent
GEMM runs inside the time loop. `proj_size` (LSTM projections) is not implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from pytorch_in_action.layers.rnn_cells import (
    GATES,
    STEPS,
    GRUCell,
    LSTMCell,
    RNNCell,
    State,
    init_uniform_,
    linear,
    rnn_mode,
)

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "scan"]


def scan(mode: str, gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None, mask: Tensor | None = None,
         reverse: bool = False) -> tuple[Tensor, State]:
    """Run one direction of one layer over time. gi: (T, B, G*H) input projections; mask: (T, B, 1), 1 where a
    step is inside its sequence. Masked steps keep the state and output zeros, so each sequence's final state is
    the one at its own last element, and the reverse direction starts from there with the initial state."""
    step = STEPS[mode]
    T = gi.shape[0]
    gis = gi.unbind(0)  # T views; unbind's backward stacks their gradients once (gi[t] would zero-fill T times)
    outs: list[Tensor] = list(gis)
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new = step(gis[t], state, w_hh, b_hh)
        if mask is not None:
            m = mask[t]  # (B, 1)
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            outs[t] = new[0] * m
        else:
            outs[t] = new[0]
        state = new
    return torch.stack(outs), state  # (T, B, H)


class RNNBase(nn.Module):
    """The stack shared by RNN, LSTM and GRU: parameters per layer and direction, in torch's order and names."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a probability in [0, 1], not {dropout}")
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"num_layers and hidden_size must be positive, got {num_layers} and {hidden_size}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        D = 2 if bidirectional else 1
        gh = GATES[mode] * hidden_size
        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * D
            for suffix in ("", "_reverse")[:D]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(gh, layer_in, **factory)))
                self.register_parameter(f"weight_hh_l{layer}{suffix}", nn.Parameter(torch.empty(gh, hidden_size, **factory)))
                if bias:
                    self.register_parameter(f"bias_ih_l{layer}{suffix}", nn.Parameter(torch.empty(gh, **factory)))
                    self.register_parameter(f"bias_hh_l{layer}{suffix}", nn.Parameter(torch.empty(gh, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_uniform_(self, self.hidden_size)

    def _weights(self, layer: int, reverse: bool) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        s = f"l{layer}{'_reverse' if reverse else ''}"
        get = lambda name: getattr(self, f"{name}_{s}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _initial_state(self, hx: Tensor | tuple[Tensor, Tensor] | None, x: Tensor, unbatched: bool) -> State:
        n_state = 2 if self.mode == "LSTM" else 1
        D = 2 if self.bidirectional else 1
        shape = (self.num_layers * D, x.shape[1], self.hidden_size)
        if hx is None:
            return (x.new_zeros(shape),) * n_state
        state = tuple(hx) if n_state == 2 else (hx,)
        if unbatched:
            state = tuple(s.unsqueeze(1) for s in state)
        for s in state:
            if tuple(s.shape) != shape:
                raise RuntimeError(f"initial state has shape {tuple(s.shape)}, expected {shape}")
        return state

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | tuple[Tensor, Tensor] | None = None,
                lengths: Tensor | list[int] | None = None):
        """Like torch.nn's forward; `lengths` (B,) marks the valid prefix of each sequence in a padded batch."""
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            x, lengths = pad_packed_sequence(input)  # (T, B, I) in the caller's batch order
        else:
            unbatched = input.dim() == 2
            x = input.unsqueeze(0 if self.batch_first else 1) if unbatched else input
            x = x.transpose(0, 1) if self.batch_first else x  # (T, B, I)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise RuntimeError(f"expected input of {self.input_size} features, got shape {tuple(x.shape)}")
        T, B = x.shape[:2]
        mask = self._mask(lengths, T, B, x)
        state0 = self._initial_state(hx, x, unbatched)
        D = 2 if self.bidirectional else 1
        finals: list[State] = []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d == 1)
                gi = linear(layer_in.reshape(T * B, -1), w_ih, b_ih).view(T, B, -1)  # all steps in one GEMM
                init = tuple(s[layer * D + d] for s in state0)
                out, final = scan(self.mode, gi, init, w_hh, b_hh, mask, reverse=d == 1)
                outs.append(out)
                finals.append(final)
            layer_in = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
        h_n = tuple(torch.stack(parts) for parts in zip(*finals))  # each (L*D, B, H)
        output = layer_in
        if packed:
            output = self._repack(output, lengths, input)
        else:
            output = output.transpose(0, 1) if self.batch_first else output
            if unbatched:
                output = output.squeeze(0 if self.batch_first else 1)
                h_n = tuple(h.squeeze(1) for h in h_n)
        return output, (h_n if self.mode == "LSTM" else h_n[0])

    @staticmethod
    def _mask(lengths: Tensor | list[int] | None, T: int, B: int, x: Tensor) -> Tensor | None:
        if lengths is None:
            return None
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.shape != (B,) or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must be {B} values in [1, {T}], got {lengths.tolist()}")
        if bool((lengths == T).all()):
            return None  # nothing to mask: skip the per-step selects
        return (torch.arange(T, device=x.device)[:, None] < lengths[None, :]).unsqueeze(-1)  # (T, B, 1)

    @staticmethod
    def _repack(output: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
        """Pack the padded output with the input's batch sizes and ordering, as torch returns it."""
        if like.sorted_indices is not None:
            output = output.index_select(1, like.sorted_indices)  # (T, B, D*H) in decreasing-length order
            lengths = lengths[like.sorted_indices.cpu()]
        data = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=True).data
        return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + ("" if self.bias else ", bias=False")


class RNN(RNNBase):
    """Twin of `nn.RNN` (Elman, tanh or relu). forward(input, h_0=None, lengths=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__(rnn_mode(nonlinearity), input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Twin of `nn.LSTM` without proj_size. forward(input, (h_0, c_0)=None, lengths=None) -> (output, (h_n, c_n))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)


class GRU(RNNBase):
    """Twin of `nn.GRU`. forward(input, h_0=None, lengths=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)
