"""`nn.Linear` made fast for the few-row inputs of decoding: the fastest of four kernels, chosen by measuring.

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

Measured on two 2-core machines (float32, 8 rows, a 768 x 3072 weight): on an Intel Xeon MKL's packed GEMM
streams 45 GB/s against 16 for `F.linear`; on an AMD EPYC, where MKL takes slow code paths, oneDNN streams
75 GB/s against 17 for both MKL kernels. So `Linear` times the kernels on its first repeated few-row call (a
handful of interleaved calls each, once per process for each weight shape and row count) and keeps the winner
and its packed copy. Training is untouched: same parameters, state_dict and autograd as `nn.Linear`. The price
is memory: one packed copy of each weight while the module is used for decoding (drop it with
`release_packed`). `PIA_LINEAR_BACKEND=plain|blocked|mkl|onednn` skips the measurement.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from functools import cache, partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action.errors import PiaError
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
        raise PiaError(f"PIA_LINEAR_BACKEND={name!r}: choose one of {', '.join(available_backends())}")
    return name


def pack(backend: str, weight: Tensor, rows: int) -> Tensor | None:
    """The weight in the layout `backend` reads (None for the kernels that read it as it is)."""
    if backend == "mkl":
        return torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)
    if backend == "onednn":
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    return None


FROZEN_INDUCTOR_CONFIGS = {
    "freezing": True, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN",
    # quiet: autotuning otherwise writes a table of timings per matrix shape to stderr
    "autotune_num_choices_displayed": 0, "max_autotune_report_choices_stats": False,
}


def export_frozen(module: nn.Module, example_args: tuple, dynamic_shapes: object = None) -> FrozenProgram:
    """`module`'s forward compiled ahead of time with its weights frozen in (`torch.export` + AOTInductor), for
    inference on the CPU.

    Frozen, the parameters are constants of the compiled graph, so inductor packs each weight once, at compile
    time, into the blocked layout of its own C++ matrix-product template (`max_autotune`, which also times that
    kernel against ATen's for every shape): at one row per product those kernels stream the weight about as fast
    as `.sum()` reads it. Compiled ahead of time, the forward is one call into a shared library: no dynamo guards
    and no Python wrapper per call (with `torch.compile` those cost ~1 ms of a ~20 ms step of the 124M GPT-2).
    Inputs must match `example_args` in dtype, device and every dimension not named dynamic in `dynamic_shapes`
    (as `torch.export.export` takes them), dynamic ones within their ranges: a call checks them and raises
    `ValueError` on a mismatch (the library itself reads whatever it is given). Inputs the forward writes in
    place are written in place. The price: the packed copies (as much memory as the weights), a
    compile of a minute or more for a large model, constants that go stale if the weights change afterwards
    (the caller must rebuild), and the built library, weights included, left in inductor's cache folder
    (`TORCHINDUCTOR_CACHE_DIR`; one per distinct graph, ~0.6 GB for the 124M GPT-2 step).
    """
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    with torch.inference_mode(False), torch.no_grad():  # export traces with autograd's view of the tensors
        example_args = tuple(_fresh_like(a) for a in example_args)
        program = torch.export.export(module, example_args, dynamic_shapes=dynamic_shapes)
        with tempfile.TemporaryDirectory() as folder:  # the loader unpacks the library into a folder of its own
            package = aoti_compile_and_package(program, package_path=os.path.join(folder, "frozen.pt2"),
                                               inductor_configs=FROZEN_INDUCTOR_CONFIGS)
            return FrozenProgram(aoti_load_package(package), _input_specs(program))


class FrozenProgram:
    """A forward built by `export_frozen`. Called like the module, the arguments are checked against the
    exported shapes and go through pytree (nested lists and tuples in, the forward's structure out). `run` takes
    and returns flat lists of tensors instead, unchecked, for hot loops whose inputs are right by construction:
    checking and flattening ~30 arguments cost ~50-100 µs per call, about 1% of a 124M GPT-2 decoding step."""

    def __init__(self, compiled: Callable, specs: list[tuple[torch.dtype, torch.device, tuple]]) -> None:
        self.compiled = compiled  # torch's AOTICompiledModel
        self.specs = specs  # per flat input: dtype, device, dims (an int, or (symbol, low, high) when dynamic)
        # the outputs' structure, parsed once (torch's own call parses it again on every call)
        self.out_spec = torch.utils._pytree.treespec_loads(compiled.loader.get_call_spec()[1])

    def __call__(self, *args: object) -> object:
        tensors = [a for a in torch.utils._pytree.tree_leaves(args) if isinstance(a, Tensor)]
        self.check(tensors)
        return torch.utils._pytree.tree_unflatten(self.run(tensors), self.out_spec)

    def run(self, tensors: list[Tensor]) -> list[Tensor]:
        """The forward on its arguments' tensors in pytree order (the arguments in order, lists flattened in
        place), unchecked: a flat list of its outputs."""
        return self.compiled.loader.run(tensors)

    def check(self, tensors: list[Tensor]) -> None:
        """Raise `ValueError` unless `tensors` are what the library was built for (count, dtype, device, fixed
        sizes, dynamic sizes in range and equal where they share a symbol)."""
        if len(tensors) != len(self.specs):
            raise ValueError(f"expected {len(self.specs)} input tensors, got {len(tensors)}")
        seen: dict[str, int] = {}
        for i, (t, (dtype, device, dims)) in enumerate(zip(tensors, self.specs)):
            if t.dtype != dtype or t.device != device or t.dim() != len(dims):
                raise ValueError(f"input {i}: expected a {dtype} {device} {len(dims)}-d tensor, "
                                 f"got {t.dtype} {t.device} {t.dim()}-d")
            for d, (size, want) in enumerate(zip(t.shape, dims)):
                where = f"input {i} has shape {tuple(t.shape)}: dimension {d} must"
                if isinstance(want, int):
                    if size != want:
                        raise ValueError(f"{where} be {want}")
                    continue
                name, low, high = want
                if not low <= size <= high:
                    raise ValueError(f"{where} be in [{low}, {high}]")
                if seen.setdefault(name, size) != size:
                    raise ValueError(f"{where} be {seen[name]}, as in the inputs sharing its size")


def _input_specs(program: torch.export.ExportedProgram) -> list[tuple[torch.dtype, torch.device, tuple]]:
    """dtype, device and dimensions of each tensor input of `program`, in pytree order; a dynamic dimension is
    (its symbol, lowest, highest size allowed). Other inputs (numbers) were fixed by the export."""
    names, ranges = program.graph_signature.user_inputs, program.range_constraints
    values = {n.name: n.meta["val"] for n in program.graph.nodes if n.op == "placeholder"}
    specs = []
    for v in (values[name] for name in names if isinstance(values[name], Tensor)):
        dims = []
        for size in v.shape:
            if isinstance(size, int):
                dims.append(size)
            else:
                r = ranges.get(size.node.expr)  # None for a size derived from others: equality checked only
                low = 0 if r is None else int(r.lower)
                high = int(r.upper) if r is not None and r.upper.is_finite else 2**62
                dims.append((str(size.node.expr), low, high))
        specs.append((v.dtype, v.device, tuple(dims)))
    return specs


def _fresh_like(a: object) -> object:
    """A plain (not inference-mode) copy of `a` for tracing, recursively through lists and tuples."""
    if isinstance(a, Tensor):
        return torch.empty_like(a).copy_(a)
    if isinstance(a, (list, tuple)):
        return type(a)(_fresh_like(x) for x in a)
    return a


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

    def __getstate__(self) -> dict:
        """Pickled (torch.save(model), deepcopy) without the packed copy: an opaque buffer, rebuilt on use."""
        return {**self.__dict__, "key": None, "packed": None}


class Linear(nn.Linear):
    """`nn.Linear` with fast few-row inference (the fastest packed kernel, else cache blocking); identical
    parameters, init, state_dict and gradients."""

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
