"""T5 (t5-small configuration, random float32 weights) greedy generation: ours vs transformers' generate(), per path:
the model's own `generate` (plain eager, its modules) and `pytorch_in_action.fast.cpu_decoder(model).generate` (the
flat one-token step over packed products).

    .venv/bin/python benchmarks/bench_t5.py [--quick]
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
from transformers import T5Config as HFConfig  # noqa: E402
from transformers import T5ForConditionalGeneration as HFT5  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from pytorch_in_action.fast import cpu_decoder  # noqa: E402
from pytorch_in_action.models.t5 import T5ForConditionalGeneration  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer tokens and repeats")
    args = ap.parse_args(argv)
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    new_tokens, src_len = (16, 32) if args.quick else (64, 64)
    repeats = 3 if args.quick else 5

    # t5-small: 6 + 6 layers, d_model 512, 8 heads, d_ff 2048, relu, tied head
    hf = HFT5(HFConfig(decoder_start_token_id=0)).eval()
    hf.generation_config.eos_token_id = None  # decode exactly `new_tokens` on both sides
    ours = T5ForConditionalGeneration.from_hf(hf).eval()

    fast = cpu_decoder(ours)
    rows = []
    for path, batch in (("plain", 1), ("plain", 8), ("fast", 1), ("fast", 8)):
        ids = torch.randint(2, 32128, (batch, src_len))
        mask = torch.ones_like(ids)
        decode = fast.generate if path == "fast" else ours.generate

        def run_ours(ids=ids, mask=mask, decode=decode):
            return decode(ids, attention_mask=mask, max_new_tokens=new_tokens, eos_token_id=-1)

        def run_hf(ids=ids, mask=mask):
            with torch.inference_mode():
                return hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, num_beams=1)

        assert torch.equal(run_ours(), run_hf()), "greedy tokens differ from transformers"
        cmp = compare(run_ours, run_hf, warmup=1, repeats=repeats)
        rows.append([path, batch, f"{batch * new_tokens / cmp.ours_s:.1f}", f"{batch * new_tokens / cmp.ref_s:.1f}",
                     f"{cmp.speedup:.2f}x"])

    print("## T5 greedy generation (t5-small configuration, float32)\n")
    print(f"{src_len}-token source, {new_tokens} new tokens, random weights, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {repeats} interleaved runs; {time.strftime('%Y-%m-%d')}.\n")
    print(markdown_table(["path", "batch", "ours tok/s", "transformers tok/s", "speedup"], rows))
    worst = {p: min(float(r[4].rstrip("x")) for r in rows if r[0] == p) for p in ("plain", "fast")}
    print(f"\nGoals: plain eager (`model.generate`, the modules themselves) at least 1.0x transformers at batch 1 and "
          f"8: **{'met' if worst['plain'] >= 1.0 else 'not met'}** (worst {worst['plain']:.2f}x); fast path "
          f"(`fast.cpu_decoder(model).generate`) at least 1.2x: **{'met' if worst['fast'] >= 1.2 else 'not met'}** "
          f"(worst {worst['fast']:.2f}x).")


if __name__ == "__main__":
    main()
