"""GPT-2 (124M configuration, random float32 weights) greedy decoding: ours vs transformers' generate(), per path.

Two paths: the model's own `generate` (plain eager: the modules the book explains) and the optimisation
`pytorch_in_action.fast.cpu_decoder(model).generate` (a native C++ step at batch 1, the flat eager step over
packed products at batch 8).

At batch 1 every new token reads all the weights once, so tokens/s is bounded by memory bandwidth / weight bytes.
That roofline is timed in the same run, interleaved with our decoding: `.sum()` over a tensor as large as the
weights, once per new token. The fraction of it reached is reported next to the ratio to transformers, and next to
the speed of the step's matrix products alone (how fast the weights actually stream through the products).

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
from _timing import compare, markdown_table  # noqa: E402
from transformers import GPT2Config as HFConfig  # noqa: E402
from transformers import GPT2LMHeadModel as HFLMHead  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from pytorch_in_action.fast import cpu_decoder  # noqa: E402
from pytorch_in_action.fast.gpt2_native import NativeDecodeStep  # noqa: E402
from pytorch_in_action.fast.linear import PackedLinears  # noqa: E402
from pytorch_in_action.models.gpt2 import GPT2LMHeadModel  # noqa: E402


def weight_reader(weight_bytes: int, steps: int):
    """A run that only streams the weights' bytes once per step: `.sum()` over a tensor as large as the weights,
    far larger than the caches. Timed against our decoding, it is the memory roofline measured in the same run."""
    x = torch.ones(weight_bytes // 4)

    def run():
        for _ in range(steps):
            x.sum()

    return run


def products_only(model: GPT2LMHeadModel, batch: int, steps: int, native: bool = False,
                  packed: PackedLinears | None = None):
    """A run of `steps` decoding steps that did nothing but the model's matrix products (same weights): the part
    of a step that streams the weights, without attention, norms and Python. That is every `nn.Linear` of the
    model on an input of `batch` rows, through `packed` (the fast path's packed products) when given; `native`
    (batch 1) times the native step of the fast path with everything but its products and barriers switched
    off."""
    if native:
        if batch != 1:
            raise ValueError("the compiled products are timed at batch 1 only")
        step = NativeDecodeStep(model)
        cfg = model.config
        buffers = [torch.zeros(1, cfg.n_head, 1, cfg.n_embd // cfg.n_head) for _ in range(cfg.n_layer)]
        cache = step.bind(buffers, buffers)

        def run_native():
            for _ in range(steps):
                step(cache, 0, 0, 0, products_only=True)

        return run_native
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]  # the blocks and the (tied) head
    xs = [torch.randn(batch, m.in_features) for m in linears]

    @torch.inference_mode()
    def run():
        for _ in range(steps):
            for m, x in zip(linears, xs):
                m(x) if packed is None else packed(m, x)

    return run


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

    fast = cpu_decoder(ours)  # native step at batch 1, flat eager step at batch 8
    rows, first_call_s = [], {}
    for path, batch in (("plain", 1), ("plain", 8), ("fast", 1), ("fast", 8)):
        ids = torch.randint(0, 50257, (batch, prompt_len))
        mask = torch.ones_like(ids)
        decode = fast.generate if path == "fast" else ours.generate

        def run_ours(ids=ids, mask=mask, decode=decode):
            return decode(ids, attention_mask=mask, max_new_tokens=new_tokens)

        def run_hf(ids=ids, mask=mask):
            with torch.inference_mode():
                return hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens,
                                   do_sample=False, num_beams=1)

        start = time.perf_counter()
        first = run_ours()
        if path == "fast":
            first_call_s[batch] = time.perf_counter() - start
        assert torch.equal(first, run_hf()), "greedy tokens differ from transformers"
        # every comparison interleaves its two sides, so drift in the shared machine's load hits both alike
        cmp = compare(run_ours, run_hf, warmup=1, repeats=repeats)
        roof = compare(run_ours, weight_reader(weight_bytes, new_tokens), warmup=1, repeats=repeats)
        native = path == "fast" and batch == 1
        packed = fast.linears if path == "fast" and batch > 1 else None
        prod = compare(run_ours, products_only(ours, batch, new_tokens, native, packed), warmup=1, repeats=repeats)
        ours_tps, hf_tps = batch * new_tokens / cmp.ours_s, batch * new_tokens / cmp.ref_s
        roof_tps = batch * new_tokens / roof.ref_s  # tokens/s if each step only streamed the weights once
        prod_tps = batch * new_tokens / prod.ref_s
        bandwidth = weight_bytes * new_tokens / roof.ref_s
        rows.append([path, batch, f"{ours_tps:.1f}", f"{hf_tps:.1f}", f"{cmp.speedup:.2f}x", f"{roof_tps:.1f}",
                     # fractions from ratios of paired medians, not from speeds timed at different moments
                     f"{100 / roof.ratio:.0f}%", f"{100 / roof.ratio / cmp.speedup:.0f}%",
                     f"{prod_tps:.1f} ({100 * prod.ratio / roof.ratio:.0f}%)", f"{100 / prod.ratio:.0f}%"])

    print("## GPT-2 greedy decoding (124M, float32)\n")
    print(f"{prompt_len}-token prompt, {new_tokens} new tokens, random weights ({weight_bytes / 1e6:.0f} MB), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats} interleaved runs; "
          f"roofline = reading the weight bytes once per step with `.sum()` ({bandwidth / 1e9:.1f} GB/s); 'ours / "
          f"roofline' and 'ours / products alone' are medians of interleaved pairs, the other fractions follow "
          f"from those medians (a shared host's bandwidth moves from second to second: a pair timed back to back "
          f"sees the same one, speeds timed minutes apart may not); "
          f"{time.strftime('%Y-%m-%d')}.\n")
    print(markdown_table(["path", "batch", "ours tok/s", "transformers tok/s", "speedup", "roofline tok/s",
                          "ours / roofline", "transformers / roofline", "products alone tok/s (of roofline)",
                          "ours / products alone"],
                         rows))
    speedup = {(r[0], r[1]): float(r[4].rstrip("x")) for r in rows}
    fast_roof = float(rows[2][6].rstrip("%")) / 100
    plain_ok = min(speedup["plain", 1], speedup["plain", 8]) >= 1.0

    def status(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    print(f"\nGoals. Plain eager (`model.generate`, the modules themselves) at least 1.0x transformers at batch 1 and "
          f"8: {status(plain_ok)} ({speedup['plain', 1]:.2f}x, {speedup['plain', 8]:.2f}x). Fast path "
          f"(`fast.cpu_decoder(model).generate`) at batch 1 at least 90% of the roofline: {status(fast_roof >= 0.9)} "
          f"({fast_roof:.0%}; its first call, packing the weights and building the kernel unless cached, took "
          f"{first_call_s[1]:.1f} s); at batch 8 at least 2x transformers: {status(speedup['fast', 8] >= 2.0)} "
          f"({speedup['fast', 8]:.2f}x; first call, timing the product kernels and packing, {first_call_s[8]:.1f} s). "
          f"'Products alone' times only the step's matrix products (every weight, nothing else, through the "
          f"path's own product kernels): how fast the weights stream here; 'ours / products alone' is what the "
          f"rest of the step (attention, norms, residuals, sampling, Python) leaves of that speed.")
    print("\nThe fast path at batch 1 decodes each token with one call into a C++ kernel built for this CPU on first "
          "use (`fast.gpt2_native`): the weights packed once, in reading order, into one contiguous stream per "
          "thread; the whole step in one parallel region with a barrier wherever a result feeds the next; 256-bit "
          "loads; a thread done with its share of a product takes the other's last blocks. Its 'products alone' "
          "row runs that kernel with everything but the products and barriers switched off. At batch 8 it runs the "
          "flat one-token step (`fast.gpt2.flat_step`) eagerly, each product through the fastest packed kernel "
          "measured here (`fast.linear`). The plain rows use `nn.Linear` (torch's GEMM) inside the model's own "
          "blocks.")


if __name__ == "__main__":
    main()
