"""Few-row products (the `nn.Linear` calls of decoding) through the fastest of four kernels, chosen by measuring.

Decoding a batch of B sequences multiplies a (B, in) activation by every weight once per new token, so the
time goes into reading weights, and the matrix library's habits decide how fast that is. A general BLAS matrix
product re-packs the weight into its internal tile layout on every call, a full extra pass over the weight that
is pure waste when the same weight is used thousands of times; and which library streams a weight fastest
depends on the CPU. Four kernels compute the same product:

- `plain`:   `F.linear` (BLAS: MKL in x86 builds of torch);
- `blocked`: `blocked_linear`, `F.linear` over L2-sized blocks of output features (portable);
- `mkl`:     MKL's packed GEMM, weight packed once (`torch.ops.mkl._mkl_reorder_linear_weight` / `_mkl_linear`);
- `onednn`:  oneDNN's inner product on a weight reordered once (`torch.ops.mkldnn._reorder_linear_weight` /
  `_linear_pointwise`), the kernels torch.compile's weight freezing uses.

Which one wins depends on the CPU: on an Intel Xeon MKL's packed GEMM streamed a weight several times faster
than `F.linear`, while on an AMD EPYC, where MKL takes slow code paths, oneDNN was the fastest by as much. So
`PackedWeight` times the kernels on its first repeated few-row call (a
handful of interleaved calls each, once per process for each weight shape and row count) and keeps the winner
and its packed copy. The models keep plain `nn.Linear` layers: the fast decoders (`fast.gpt2`, `fast.t5`) route
those layers' weights through a `PackedLinears` of their own. The price is memory: one packed copy of each weight
while decoding (drop it with `PackedLinears.release`). `PIA_LINEAR_BACKEND=plain|blocked|mkl|onednn` skips the
measurement. The packed kernels are private torch ops (`torch.ops.mkl`, `torch.ops.mkldnn`); a build without them
falls back to `plain` and `blocked`.
"""

from __future__ import annotations

import os
from functools import cache, partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action.timing import interleaved_medians

BLOCK_BYTES = 768 << 10  # weight bytes per block: fits the 2 MiB L2 cache of one core here with room to spare
MAX_ROWS = 64  # beyond this many rows the plain GEMM is efficient again
BACKENDS = ("plain", "blocked", "mkl", "onednn")
TUNE_ROUNDS = 5  # interleaved timing rounds per candidate kernel (the first is a warm-up)
EVICT_BYTES = 64 << 20  # read before each timed call of a weight that fits in it: decoding meets weights cold
_chosen: dict[tuple, str] = {}  # (out, in, rows, bias?, threads) -> fastest backend measured in this process


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


@cache
def onednn_linear_available() -> bool:
    """True when this torch build has oneDNN and exposes its prepacked inner product."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def available_backends() -> tuple[str, ...]:
    """The kernels this torch build offers, in `BACKENDS` order."""
    have = {"mkl": packed_gemm_available(), "onednn": onednn_linear_available()}
    return tuple(b for b in BACKENDS if have.get(b, True))


def forced_backend() -> str | None:
    """The backend named by `PIA_LINEAR_BACKEND`, or None to measure."""
    name = os.environ.get("PIA_LINEAR_BACKEND", "").strip().lower() or None
    if name is not None and name not in available_backends():
        raise ValueError(f"PIA_LINEAR_BACKEND={name!r}: choose one of {', '.join(available_backends())}")
    return name


def pack(backend: str, weight: Tensor, rows: int) -> Tensor | None:
    """The weight in the layout `backend` reads (None for the kernels that read it as it is)."""
    if backend == "mkl":
        return torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)
    if backend == "onednn":
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    return None


def run(backend: str, x: Tensor, weight: Tensor, packed: Tensor | None, bias: Tensor | None, rows: int) -> Tensor:
    """`F.linear(x, weight, bias)` through `backend` (`packed` made by `pack(backend, weight, rows)`)."""
    if backend == "mkl":
        return torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows)
    if backend == "onednn":
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    if backend == "blocked":
        return blocked_linear(x, weight, bias)
    return F.linear(x, weight, bias)


def fastest_backend(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[str, Tensor | None]:
    """The backend that computes this product fastest here, and its packed weight.

    Measured once per (weight shape, row count, bias, threads) in a process: `TUNE_ROUNDS` rounds that call
    every candidate in turn (interleaved, so a change in the machine's load hits all alike), the first round a
    warm-up; the lowest median time wins. Decoding reads each weight once per token after all the others, so
    from memory, not from the cache: a weight small enough to stay cached is timed after reading `EVICT_BYTES`
    of other data (kernels rank differently on cached weights, measured on an AMD EPYC).
    """
    rows = x.numel() // max(x.size(-1), 1)
    key = (*weight.shape, rows, bias is not None, torch.get_num_threads())
    name = forced_backend() or _chosen.get(key)
    if name is not None:
        return name, pack(name, weight, rows)
    packs = {b: pack(b, weight, rows) for b in available_backends()}
    evict = torch.ones(EVICT_BYTES // 4) if weight.numel() * weight.element_size() < EVICT_BYTES else None
    medians = interleaved_medians({b: partial(run, b, x, weight, p, bias, rows) for b, p in packs.items()},
                                  TUNE_ROUNDS, before=None if evict is None else evict.sum)
    name = min(medians, key=medians.get)
    _chosen[key] = name
    return name, packs[name]


class PackedWeight:
    """Few-row products with one weight: through the fastest backend and its packed copy of the weight (made for
    one row count), falling back to `blocked_linear` wherever that does not apply.

    A row count is handled once it repeats (two calls in a row with the same count: the decoding loop), so a
    one-off call such as a prompt's prefill neither pays for packing nor evicts the decoding copy. The copy is
    rebuilt when the weight changes (another tensor, or an in-place update that bumps its version counter), so a
    stale copy is never used. `frozen=True` is for a weight its owner never changes in place, such as a fused
    weight built inside `torch.inference_mode()` (inference tensors have no version counter to watch).
    """

    def __init__(self, frozen: bool = False) -> None:
        self.frozen = frozen
        self.key: tuple | None = None  # (rows, data_ptr, version, shape) the packed copy was made for
        self.backend = "plain"
        self.packed: Tensor | None = None
        self.last_rows = 0

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """`F.linear(x, weight, bias)`: through the chosen backend where that applies, else `blocked_linear`."""
        rows = x.numel() // max(x.size(-1), 1)
        last, self.last_rows = self.last_rows, rows
        if not (1 <= rows <= MAX_ROWS and x.device.type == "cpu"
                and x.dtype == weight.dtype == torch.float32 and (self.frozen or not weight.is_inference())
                and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
                and not torch.is_autocast_enabled("cpu")):
            return blocked_linear(x, weight, bias)
        key = (rows, weight.data_ptr(), 0 if self.frozen else weight._version, tuple(weight.shape))
        if key != self.key:
            if rows != last:
                return blocked_linear(x, weight, bias)  # not (yet) a repeated row count
            self.backend, self.packed = fastest_backend(x, weight, bias)
            self.key = key
        return run(self.backend, x, weight, self.packed, bias, rows)

    def release(self) -> None:
        self.key = self.packed = None


class PackedLinears:
    """A `PackedWeight` for every `nn.Linear` of a model: `self(module, x)` is `module(x)` computed through it.

    The model is not changed: its layers stay `nn.Linear`, and the packed copies live here, beside it."""

    def __init__(self, model: nn.Module) -> None:
        self.packs = {m: PackedWeight() for m in model.modules() if isinstance(m, nn.Linear)}

    def __call__(self, module: nn.Linear, x: Tensor) -> Tensor:
        return self.packs[module].linear(x, module.weight, module.bias)

    def release(self) -> None:
        """Free every packed copy (each is rebuilt on its next few-row call)."""
        for pack in self.packs.values():
            pack.release()
