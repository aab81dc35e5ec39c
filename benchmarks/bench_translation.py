"""Translation model: the from-scratch encoder-decoder against the same model on `torch.nn.Transformer`.

Rows: a training step (forward + backward, bf16 autocast), teacher-forced inference, and greedy decoding, where
ours uses the KV cache and torch's Transformer (which has none) re-runs the decoder over the prefix.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import compare, markdown_table  # noqa: E402

from pytorch_in_action.models.seq2seq import EOS_ID, PAD_ID, Seq2SeqConfig, Seq2SeqTransformer  # noqa: E402


def twins(cfg: Seq2SeqConfig) -> tuple[Seq2SeqTransformer, Seq2SeqTransformer]:
    """Ours, and a copy whose `transformer` is `nn.Transformer` with the same weights (same state_dict keys)."""
    torch.manual_seed(0)
    ours = Seq2SeqTransformer(cfg)
    ref = Seq2SeqTransformer(cfg)
    ref.transformer = torch.nn.Transformer(cfg.d_model, cfg.n_head, cfg.num_encoder_layers, cfg.num_decoder_layers,
                                           cfg.dim_feedforward, cfg.dropout, batch_first=True,
                                           norm_first=cfg.norm_first)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def batch(B: int, S: int, V: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, V, (B, S), generator=g)
    src[:, -1] = EOS_ID
    src[: B // 4, S // 2 :] = PAD_ID  # a quarter of the rows are padded
    return src, torch.randint(4, V, (B, S + 2), generator=g)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    B, S, repeats = (16, 12, 3) if args.quick else (64, 16, 7)
    cfg = Seq2SeqConfig(4000, 4000, d_model=256, n_head=4, num_encoder_layers=3, num_decoder_layers=3,
                        dim_feedforward=1024, dropout=0.1, share_embeddings=True)
    ours, ref = twins(cfg)
    src, tgt = batch(B, S, cfg.src_vocab_size)
    ours.eval(), ref.eval()
    with torch.no_grad():  # same model: same logits (float32, eval mode)
        torch.testing.assert_close(ours(src, tgt), ref(src, tgt), rtol=1e-4, atol=1e-4)

    def train_step(model: Seq2SeqTransformer):
        def run() -> None:
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(src, tgt[:, :-1])
            torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tgt[:, 1:].flatten()).backward()
        return run

    def infer(model: Seq2SeqTransformer):
        def run() -> None:
            model.eval()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                model(src, tgt)
        return run

    def greedy(model: Seq2SeqTransformer, cache: bool):
        def run() -> None:
            model.eval()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model.translate(src, max_new_tokens=2 * S, use_cache=cache)
        return run

    rows = []
    for name, a, b in [("train step fwd+bwd (bf16)", train_step(ours), train_step(ref)),
                       ("forward, teacher forcing (bf16)", infer(ours), infer(ref)),
                       (f"greedy decode {2 * S} tokens: ours+KV cache vs torch", greedy(ours, True), greedy(ref, False)),
                       ("greedy decode: ours+KV cache vs ours uncached", greedy(ours, True), greedy(ours, False))]:
        c = compare(a, b, warmup=1, repeats=repeats)
        rows.append([name, c.ours_s * 1e3, c.ref_s * 1e3, c.ratio])
    print("## Translation model (seq2seq)\n")
    print(f"d_model 256, 3+3 layers, vocab 4000, batch {B} x {S} source tokens, {torch.get_num_threads()} threads; "
          "ratio < 1: ours faster (median of interleaved pairs).\n")
    print(markdown_table(["case", "ours ms", "reference ms", "ratio"], rows))


if __name__ == "__main__":
    main()
