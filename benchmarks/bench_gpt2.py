"""GPT-2 (124M configuration, random float32 weights) greedy decoding: ours vs transformers' generate().

At batch 1 every new token reads all the weights once, so tokens/s is bounded by memory bandwidth / weight bytes.
The bandwidth is measured in the same run (a large tensor `.sum()`), and the fraction of that roofline reached is
reported next to the ratio to transformers.

    .venv/bin/python benchmarks/bench_gpt2.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
from _timing import compare, markdown_table, time_it  # noqa: E402
from transformers import GPT2Config as HFConfig  # noqa: E402
from transformers import GPT2LMHeadModel as HFLMHead  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from pytorch_in_action.models.gpt2 import GPT2LMHeadModel  # noqa: E402


def read_bandwidth(n_bytes: int = 512 * 2**20, repeats: int = 7) -> float:
    """Bytes/s of a streaming read: `.sum()` over a tensor far larger than the caches."""
    x = torch.ones(n_bytes // 4)
    return n_bytes / time_it(lambda: x.sum(), warmup=2, repeats=repeats)


@torch.inference_mode()
def products_only_tps(model: torch.nn.Module, batch: int) -> float:
    """Tokens/s of a decoding step that did nothing but the model's matrix products (same modules, same weights,
    same kernels): the part of the step that streams the weights, without attention, norms and Python."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]  # the blocks and the (tied) head
    xs = [torch.randn(batch, m.in_features) for m in linears]

    def step():
        for m, x in zip(linears, xs):
            m(x)

    return batch / time_it(step, warmup=3, repeats=15)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer tokens and repeats")
    args = ap.parse_args(argv)
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    new_tokens, prompt_len = (32, 32) if args.quick else (128, 32)
    repeats = 3 if args.quick else 5

    hf = HFLMHead(HFConfig()).eval()  # the 124M configuration: 12 layers, 12 heads, 768 wide
    hf.generation_config.eos_token_id = None  # decode exactly `new_tokens` on both sides
    hf.generation_config.pad_token_id = 0
    ours = GPT2LMHeadModel.from_hf(hf).eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())  # tied head counted once

    rows = []
    for batch in (1, 8):
        ids = torch.randint(0, 50257, (batch, prompt_len))
        mask = torch.ones_like(ids)

        def run_ours(ids=ids, mask=mask):
            return ours.generate(ids, attention_mask=mask, max_new_tokens=new_tokens)

        def run_hf(ids=ids, mask=mask):
            with torch.inference_mode():
                return hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens,
                                   do_sample=False, num_beams=1)

        assert torch.equal(run_ours(), run_hf()), "greedy tokens differ from transformers"
        bandwidth = read_bandwidth()
        cmp = compare(run_ours, run_hf, warmup=1, repeats=repeats)
        products_tps = products_only_tps(ours, batch)
        bandwidth = (bandwidth + read_bandwidth()) / 2  # before and after: the machine is shared
        ours_tps, hf_tps = batch * new_tokens / cmp.ours_s, batch * new_tokens / cmp.ref_s
        roof = batch * bandwidth / weight_bytes  # tokens/s if each step only streamed the weights once
        rows.append([batch, f"{ours_tps:.1f}", f"{hf_tps:.1f}", f"{cmp.speedup:.2f}x", f"{roof:.1f}",
                     f"{100 * ours_tps / roof:.0f}%", f"{100 * hf_tps / roof:.0f}%",
                     f"{products_tps:.1f} ({100 * products_tps / roof:.0f}%)"])

    print("## GPT-2 greedy decoding (124M, float32)\n")
    print(f"{prompt_len}-token prompt, {new_tokens} new tokens, random weights ({weight_bytes / 1e6:.0f} MB), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats} interleaved runs; "
          f"roofline = read bandwidth ({bandwidth / 1e9:.1f} GB/s, measured) / weight bytes, per step; "
          f"{time.strftime('%Y-%m-%d')}.\n")
    print(markdown_table(["batch", "ours tok/s", "transformers tok/s", "speedup", "roofline tok/s",
                          "ours / roofline", "transformers / roofline", "products alone tok/s (of roofline)"],
                         rows))
    b1_roof, b8_speedup = float(rows[0][5].rstrip("%")) / 100, float(rows[1][3].rstrip("x"))
    print(f"\nGoals: batch 1 at least 90% of the roofline: **{'met' if b1_roof >= 0.9 else 'not met'}** "
          f"({b1_roof:.0%}); batch 8 at least 1.5x transformers: **{'met' if b8_speedup >= 1.5 else 'not met'}** "
          f"({b8_speedup:.2f}x). 'Products alone' times only the step's matrix products (every weight, same "
          f"modules and kernels, nothing else): how fast the weights stream here; the gap between it and ours is "
          f"the rest of the step (attention, norms, residuals, sampling, Python).")


if __name__ == "__main__":
    main()
