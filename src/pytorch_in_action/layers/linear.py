"""`nn.Linear` made fast for the few-row inputs of decoding: a packed weight, or cache blocking.

Decoding a batch of B sequences multiplies a (B, in) activation by every weight once per new token, so the
time goes into reading weights, and the matrix library's habits decide how fast that is. A general BLAS matrix
product re-packs the weight into its internal tile layout on every call: a full extra pass over the weight
that is pure waste when the same weight is used thousands of times. Measured here (2 cores, float32, 8 rows):
a 768 x 3072 weight streams at about 16 GB/s through `F.linear`, 19 GB/s when cut into L2-sized blocks, and
45 GB/s through MKL's packed GEMM, whose packing is done once (`cblas_sgemm_pack`, exposed by torch as
`torch.ops.mkl._mkl_reorder_linear_weight` / `_mkl_linear`, the ops torch.compile's weight freezing uses).

`Linear` therefore keeps a packed copy of its weight for the row count it sees during inference (no gradient
wanted, float32, CPU, MKL present) and falls back to `blocked_linear` (the cache-blocking trick, portable) or
plain `F.linear` everywhere else. Training is untouched: same parameters, state_dict and autograd as
`nn.Linear`. The price is memory: one packed copy of each weight while the module is used for decoding (drop it
with `release_packed`).
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BLOCK_BYTES = 768 << 10  # weight bytes per block: fits the 2 MiB L2 cache of one core here with room to spare
MAX_ROWS = 64  # beyond this many rows the plain GEMM is efficient again
USE_PACKED = True  # set False to compare against the portable path
PACKED_MIN_ROWS = 2  # one row goes straight to the BLAS matrix-vector product (measured: packing gains nothing)


def blocked_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear(x, weight, bias)`, computed over L2-sized blocks of output features when `x` has 2 to
    `MAX_ROWS` rows (all leading dimensions together); otherwise a single `F.linear` call."""
    rows = x.numel() // max(x.size(-1), 1)
    if rows < 2 or rows > MAX_ROWS or x.device.type != "cpu":
        return F.linear(x, weight, bias)
    out_features, in_features = weight.shape
    block = max(16, BLOCK_BYTES // (in_features * weight.element_size()))
    if block >= out_features:
        return F.linear(x, weight, bias)
    parts = [F.linear(x, weight[i:i + block], None if bias is None else bias[i:i + block])
             for i in range(0, out_features, block)]
    return torch.cat(parts, dim=-1)  # (..., out_features)


@cache
def packed_gemm_available() -> bool:
    """True when this torch build has MKL and exposes its packed-GEMM ops (x86 builds do; ARM builds do not)."""
    return torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")


class PackedWeight:
    """Few-row products with one weight: through MKL's packed copy of it (made for one row count), falling back
    to `blocked_linear` wherever that copy does not apply.

    A row count is packed once it repeats (two calls in a row with the same count: the decoding loop), so a
    one-off call such as a prompt's prefill neither pays for packing nor evicts the decoding copy. The copy is
    rebuilt when the weight changes (another tensor, or an in-place update that bumps its version counter), so a
    stale copy is never used. `frozen=True` is for a weight its owner never changes in place, such as a fused
    weight built inside `torch.inference_mode()` (inference tensors have no version counter to watch).
    """

    def __init__(self, frozen: bool = False) -> None:
        self.frozen = frozen
        self.key: tuple | None = None  # (rows, data_ptr, version, shape) the packed copy was made for
        self.packed: Tensor | None = None
        self.last_rows = 0

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """`F.linear(x, weight, bias)`: through the packed weight where that applies, else `blocked_linear`."""
        rows = x.numel() // max(x.size(-1), 1)
        last, self.last_rows = self.last_rows, rows
        if rows < PACKED_MIN_ROWS:
            return F.linear(x, weight, bias)  # the matrix-vector product already streams the weight at full speed
        if not (USE_PACKED and rows <= MAX_ROWS and x.device.type == "cpu"
                and x.dtype == weight.dtype == torch.float32 and (self.frozen or not weight.is_inference())
                and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
                and not torch.is_autocast_enabled("cpu") and packed_gemm_available()):
            return blocked_linear(x, weight, bias)
        key = (rows, weight.data_ptr(), 0 if self.frozen else weight._version, tuple(weight.shape))
        if key != self.key:
            if rows != last:
                return blocked_linear(x, weight, bias)  # not (yet) a repeated row count
            self.packed = torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)
            self.key = key
        return torch.ops.mkl._mkl_linear(x, self.packed, weight, bias, rows)

    def release(self) -> None:
        self.key = self.packed = None

    def __getstate__(self) -> dict:
        """Pickled (torch.save(model), deepcopy) without the packed copy: an opaque MKL buffer, rebuilt on use."""
        return {**self.__dict__, "key": None, "packed": None}


class Linear(nn.Linear):
    """`nn.Linear` with fast few-row inference (packed weight, else cache blocking); identical parameters, init,
    state_dict and gradients."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._packed = PackedWeight()

    def forward(self, input: Tensor) -> Tensor:
        return self._packed.linear(input, self.weight, self.bias)

    def release_packed(self) -> None:
        """Free the packed copy of the weight (it is rebuilt on the next few-row inference call)."""
        self._packed.release()


def release_packed(model: nn.Module) -> None:
    """Free the packed weight copies of every `Linear` in `model`."""
    for m in model.modules():
        if isinstance(m, Linear):
            m.release_packed()
