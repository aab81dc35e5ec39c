"""Attention: a naive softmax(Q Kᵀ / sqrt(d)) V against the from-scratch SDPA and the fused kernel MHA uses.

`python benchmarks/bench_attention.py [--quick]` prints one Markdown section. Peak memory is measured in a fresh
subprocess per case (growth of the peak resident set size during one forward call; Linux only).
"""

from __future__ import annotations

import argparse
import math
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, markdown_table  # noqa: E402

from pytorch_in_action.layers.attention import scaled_dot_product_attention  # noqa: E402

N_HEAD, HEAD_SIZE = 8, 64


def naive(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """The textbook formula, every intermediate (B, nh, T, T) matrix materialised."""
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1) @ v


METHODS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "naive": naive,
    "ours (from scratch)": scaled_dot_product_attention,
    "fused F.sdpa (MHA fast path)": F.scaled_dot_product_attention,
}


def _inputs(B: int, T: int, requires_grad: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(B, N_HEAD, T, HEAD_SIZE, generator=g, requires_grad=requires_grad) for _ in range(3))


def peak_mib(method: str, B: int, T: int) -> float:
    """Peak RSS growth (MiB) of one forward call, measured in a fresh interpreter so earlier runs do not hide it."""
    code = (f"import sys; sys.argv=['x']; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_attention as b; print(b._peak_in_process({method!r}, {B}, {T}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_in_process(method: str, B: int, T: int) -> float:
    q, k, v = _inputs(B, T)
    METHODS[method](q[:, :, :8], k[:, :, :8], v[:, :, :8])  # load kernels before measuring
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    METHODS[method](q, k, v)
    return (_status_kib("VmHWM") - before) / 1024


def bench_length(B: int, T: int, repeats: int) -> list[list[object]]:
    """One row per method at sequence length T: forward and forward+backward time against naive, peak memory."""
    q, k, v = _inputs(B, T)
    qg, kg, vg = _inputs(B, T, requires_grad=True)
    scores_mib = B * N_HEAD * T * T * 4 / 2**20
    rows = []
    for name, fn in METHODS.items():
        fwd = compare(lambda fn=fn: fn(q, k, v), lambda: naive(q, k, v), warmup=1, repeats=repeats)
        both = compare(lambda fn=fn: fn(qg, kg, vg).sum().backward(), lambda: naive(qg, kg, vg).sum().backward(),
                       warmup=1, repeats=repeats)
        rows.append([T, name, f"{fwd.ours_s * 1e3:.1f}", fwd.ratio, f"{both.ours_s * 1e3:.1f}", both.ratio,
                     f"{peak_mib(name, B, T):.0f}", f"{scores_mib:.0f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="batch 1, fewer repeats")
    args = ap.parse_args(argv)
    B, repeats = (1, 3) if args.quick else (4, 5)
    rows = [row for T in (256, 1024) for row in bench_length(B, T, repeats)]
    print("## Scaled dot-product attention (naive vs from scratch vs fused)\n")
    print(f"batch {B}, {N_HEAD} heads of {HEAD_SIZE}, no mask, float32, {torch.get_num_threads()} threads, "
          f"{platform.machine()}, torch {torch.__version__}; times are medians, ratios are the median of interleaved "
          "pairs against naive (< 1 is faster); peak memory = RSS growth of one forward call in a fresh process.\n")
    print(markdown_table(["T", "method", "fwd (ms)", "fwd / naive", "fwd+bwd (ms)", "fwd+bwd / naive",
                          "peak fwd (MiB)", "one T×T fp32 score matrix (MiB)"], rows))


if __name__ == "__main__":
    main()
