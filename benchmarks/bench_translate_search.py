"""Search for `pia translate train`'s defaults on the bundled Tatoeba corpus: candidates at EQUAL time budgets.

Each candidate (model size, tokenizer, dropout, label smoothing, schedule, batch) trains for the same budget on
the default training split, with a warmup + cosine schedule whose length is estimated from the first steps' speed
(as the recipe does under `--minutes`), then is scored by greedy BLEU on the VALID split (the test split is kept
for the chosen default). Prints one Markdown table: BLEU against minutes.

The budget is CPU time, not wall time: `--minutes 3` gives each candidate 3 x 60 x (torch threads) CPU-seconds,
what 3 minutes are on an otherwise idle machine. On a machine shared with other jobs, wall time measures the
neighbours more than the candidate; the process's CPU time keeps the comparison fair.

    .venv/bin/python benchmarks/bench_translate_search.py --minutes 3 [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field, replace

import sacrebleu
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(__file__))
from _timing import markdown_table  # noqa: E402

from pytorch_in_action.data.translation import load_splits  # noqa: E402
from pytorch_in_action.data.translation_batching import BucketBatchSampler, PairDataset, collate  # noqa: E402
from pytorch_in_action.data.translation_tokenizer import build_tokenizers  # noqa: E402
from pytorch_in_action.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer  # noqa: E402
from pytorch_in_action.recipes.translation import seq2seq_loss, translate_texts  # noqa: E402
from pytorch_in_action.train.optim import build_optimizer  # noqa: E402
from pytorch_in_action.train.schedule import build_scheduler  # noqa: E402


@dataclass
class Candidate:
    name: str
    d_model: int = 256
    n_head: int = 4
    layers: int = 3
    ff: int = 1024
    shared_vocab: bool = False
    vocab: int = 4000
    dropout: float = 0.1
    label_smoothing: float = 0.1
    sched: str = "warmup_cosine"
    lr: float = 1e-3
    warmup: int = 0  # 0: 5% of the steps the budget allows, as the recipe does
    max_tokens: int = 4096
    notes: dict = field(default_factory=dict)


BASE = Candidate("base: d256 3+3, en BPE 4k + zh chars")
CANDIDATES = [  # in order of importance: a short search runs the first ones
    BASE,
    replace(BASE, name="2+2 layers", layers=2),
    replace(BASE, name="shared BPE vocab 8k (tied embeddings)", shared_vocab=True, vocab=8000),
    replace(BASE, name="dropout 0.3", dropout=0.3),
    replace(BASE, name="lr 2e-3", lr=2e-3),
    replace(BASE, name="inverse_sqrt schedule", sched="inverse_sqrt"),
    replace(BASE, name="d384 3+3 ff1536, 6 heads", d_model=384, n_head=6, ff=1536),
    replace(BASE, name="no label smoothing", label_smoothing=0.0),
    replace(BASE, name="batch 2048 tokens", max_tokens=2048),
    replace(BASE, name="batch 2048 tokens, lr 2e-3", max_tokens=2048, lr=2e-3),
    replace(BASE, name="2+2 layers, batch 2048 tokens, lr 2e-3", layers=2, max_tokens=2048, lr=2e-3),
]


def run(c: Candidate, splits: dict, minutes: float, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    src_tok, tgt_tok = build_tokenizers(splits["train"], c.vocab, shared=c.shared_vocab)
    train = PairDataset(splits["train"], src_tok, tgt_tok, 128)
    sampler = BucketBatchSampler(train.lengths(), c.max_tokens, seed=seed)
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=collate)
    cfg = Seq2SeqConfig(src_tok.get_vocab_size(), tgt_tok.get_vocab_size(), c.d_model, c.n_head, c.layers,
                        c.layers, c.ff, c.dropout, max_len=128, share_embeddings=c.shared_vocab)
    model = Seq2SeqTransformer(cfg)
    opt = build_optimizer(model, "adamw", c.lr, 0.01, betas=(0.9, 0.98))
    sched = build_scheduler(opt, c.sched, total_steps=10**6, warmup_steps=c.warmup or 20)  # 20: until estimated
    budget, step, epoch = minutes * 60 * torch.get_num_threads(), 0, 0  # CPU-seconds
    start, cpu0 = time.perf_counter(), time.process_time()
    total = None
    model.train()
    while True:
        sampler.set_epoch(epoch)
        for batch in loader:
            loss, _ = seq2seq_loss(model, batch, c.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            elapsed = time.process_time() - cpu0
            if step == 20 and c.sched == "warmup_cosine":  # estimate the budget's steps from the speed so far
                total = max(c.warmup + 1, int(step * budget / elapsed))
                sched.lr_lambdas[0].total = total
                sched.lr_lambdas[0].warmup = c.warmup or max(1, total // 20)
            if elapsed >= budget or (total and step >= total):
                break
        else:
            epoch += 1
            continue
        break
    train_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu0
    model.eval()
    valid = splits["valid"][:500]
    hyps = translate_texts(model, src_tok, tgt_tok, [en for en, _ in valid])
    refs = [zh for _, zh in valid]
    return {"steps": step, "epochs": step / len(sampler), "train_min": train_s / 60,
            "cpu_min": cpu_s / 60 / torch.get_num_threads(),
            "params": sum(p.numel() for p in model.parameters()) / 1e6,
            "bleu": sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score,
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score, "loss": loss.item()}


def speed(c: Candidate, splits: dict, steps: int = 4, seed: int = 0) -> dict:
    """CPU seconds per training step (after one untimed step) and what one budget-minute buys: the cost side of
    the search, cheap enough to measure for every candidate on a busy machine."""
    torch.manual_seed(seed)
    src_tok, tgt_tok = build_tokenizers(splits["train"], c.vocab, shared=c.shared_vocab)
    train = PairDataset(splits["train"], src_tok, tgt_tok, 128)
    sampler = BucketBatchSampler(train.lengths(), c.max_tokens, seed=seed)
    cfg = Seq2SeqConfig(src_tok.get_vocab_size(), tgt_tok.get_vocab_size(), c.d_model, c.n_head, c.layers,
                        c.layers, c.ff, c.dropout, max_len=128, share_embeddings=c.shared_vocab)
    model = Seq2SeqTransformer(cfg)
    opt = build_optimizer(model, "adamw", c.lr, 0.01, betas=(0.9, 0.98))
    cpu = []
    for indices in sampler.batches()[: steps + 1]:
        start = time.process_time()
        loss, _ = seq2seq_loss(model, collate([train[i] for i in indices]), c.label_smoothing)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        cpu.append(time.process_time() - start)
    step_s = sum(cpu[1:]) / steps
    return {"params": sum(p.numel() for p in model.parameters()) / 1e6, "cpu_s": step_s,
            "batches": len(sampler)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget of every candidate")
    ap.add_argument("--only", nargs="*", help="names (prefixes) of candidates to run")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    ap.add_argument("--speed-only", type=int, metavar="STEPS", help="only time STEPS training steps per candidate")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = load_splits()
    if args.speed_only:
        rows = []
        for c in CANDIDATES:
            r = speed(c, splits, args.speed_only)
            rows.append([c.name, f"{r['params']:.1f}M", f"{r['cpu_s']:.2f}", r["batches"],
                         f"{60 * args.threads / r['cpu_s'] / r['batches']:.2f}"])
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
        print(f"## Translation defaults: cost of each candidate ({args.threads} torch thread(s))\n")
        print(markdown_table(["candidate", "params", "CPU s/step", "batches/epoch", "epochs per budget-minute"],
                             rows))
        return
    rows = []
    for c in CANDIDATES:
        if args.only and not any(c.name.startswith(o) for o in args.only):
            continue
        r = run(c, splits, args.minutes)
        rows.append([c.name, f"{r['params']:.1f}M", r["steps"], f"{r['epochs']:.1f}", f"{r['cpu_min']:.1f}",
                     f"{r['train_min']:.1f}",
                     f"{r['loss']:.2f}", f"{r['bleu']:.2f}", f"{r['chrf']:.1f}"])
        print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(f"## Translation defaults: candidates at {args.minutes:g} training minutes each\n")
    print(f"{torch.get_num_threads()} torch threads; budget in CPU time (minutes = CPU-seconds / threads / 60); "
          f"wall minutes on this machine beside them.\n")
    print(markdown_table(["candidate", "params", "steps", "epochs", "CPU min", "wall min", "last loss",
                          "valid BLEU (greedy)", "valid chrF"], rows))


if __name__ == "__main__":
    main()
