"""From-scratch LSTM vs nn.LSTM, forward + backward (float32, this CPU).

`python benchmarks/bench_rnn.py [--quick]` prints one Markdown section with the time ratio of ours to torch's
(median of interleaved pairs; < 1 means ours is faster) for the LSTM, GRU and Elman RNN stacks.
"""

from __future__ import annotations

import argparse
import platform

import torch
from _timing import compare, markdown_table
from torch import nn

from pytorch_in_action.layers import rnn as R


def step(model: nn.Module, x: torch.Tensor):
    """One forward + backward, as in training."""
    def run() -> None:
        model.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.sum().backward()
    return run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="LSTM only, fewer repeats")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    T, B, H, L = 64, 32, 256, 2
    repeats = 3 if args.quick else 7
    kinds = ["LSTM"] if args.quick else ["LSTM", "GRU", "RNN"]
    rows = []
    for kind in kinds:
        ref = getattr(nn, kind)(H, H, num_layers=L, bidirectional=True)
        ours = getattr(R, kind)(H, H, num_layers=L, bidirectional=True)
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(T, B, H, requires_grad=True)
        res = compare(step(ours, x), step(ref, x), warmup=2, repeats=repeats)
        with torch.no_grad():
            fwd = compare(lambda ours=ours, x=x: ours(x), lambda ref=ref, x=x: ref(x), warmup=2, repeats=repeats)
        rows.append([kind, res.ref_s * 1e3, res.ours_s * 1e3, res.ratio, fwd.ratio])
    print("## RNN family: from-scratch stacks vs torch.nn\n")
    print(f"float32, {L} layers, bidirectional, T={T}, B={B}, input=hidden={H}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}; ratio = our time / torch time "
          f"(median of {repeats} interleaved pairs).\n")
    print(markdown_table(["model", "torch fwd+bwd ms", "ours fwd+bwd ms", "fwd+bwd ratio", "forward-only ratio"],
                         rows))
    lstm = rows[0][3]
    print(f"\nGoal: LSTM forward + backward at most 2x `nn.LSTM`: **{'met' if lstm <= 2 else 'not met'}** ({lstm:.2f}x).")


if __name__ == "__main__":
    main()
