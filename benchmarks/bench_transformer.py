"""TransformerEncoderLayer from scratch vs nn.TransformerEncoderLayer: train step (forward+backward) and inference.

`python benchmarks/bench_transformer.py [--quick]` prints one Markdown section.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, markdown_table  # noqa: E402

from pytorch_in_action.layers.transformer import TransformerEncoderLayer  # noqa: E402


def bench_case(norm_first: bool, B: int, T: int, d_model: int, nhead: int, repeats: int) -> list[list[object]]:
    """Rows for one layer flavour: train step and inference, ours vs torch with the same weights."""
    torch.manual_seed(0)
    kw = {"d_model": d_model, "nhead": nhead, "dim_feedforward": 4 * d_model, "batch_first": True,
          "norm_first": norm_first}
    ref, ours = nn.TransformerEncoderLayer(**kw), TransformerEncoderLayer(**kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, d_model)
    name = "pre-LN" if norm_first else "post-LN"

    def train_step(m: nn.Module) -> None:
        m.zero_grad(set_to_none=True)
        m(x).sum().backward()

    ref.train()
    ours.train()
    c = compare(lambda: train_step(ours), lambda: train_step(ref), warmup=2, repeats=repeats)
    rows = [[f"{name} train step (fwd+bwd, dropout 0.1)", f"{c.ours_s * 1e3:.1f}", f"{c.ref_s * 1e3:.1f}", c.ratio]]
    ref.eval()
    ours.eval()
    with torch.inference_mode():  # torch may take its fused inference fast path here
        c = compare(lambda: ours(x), lambda: ref(x), warmup=2, repeats=repeats)
    rows.append([f"{name} inference (eval, no grad)", f"{c.ours_s * 1e3:.1f}", f"{c.ref_s * 1e3:.1f}", c.ratio])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller batch")
    args = ap.parse_args(argv)
    d_model, nhead, T = 512, 8, 256
    B, repeats = (2, 3) if args.quick else (8, 7)
    rows = [r for norm_first in (False, True) for r in bench_case(norm_first, B, T, d_model, nhead, repeats)]
    print("## Transformer encoder layer (from scratch vs torch.nn)\n")
    print(f"d_model {d_model}, nhead {nhead}, dim_feedforward {4 * d_model}, batch {B} x T {T}, float32, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, torch {torch.__version__}; "
          "median of interleaved pairs, ratio < 1 means ours is faster.\n")
    print(markdown_table(["case", "ours (ms)", "torch (ms)", "ours / torch"], rows))
    worst = max(r[3] for r in rows if "train step" in r[0])
    print(f"\nGoal: forward + backward at most 1.1x torch's layer: **{'met' if worst <= 1.1 else 'not met'}** "
          f"(worst {worst:.2f}x).")


if __name__ == "__main__":
    main()
