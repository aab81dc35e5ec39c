"""`pia translate train|evaluate|translate`: English->Chinese translation with an encoder-decoder Transformer.

With no `--data`/`--hf` it trains on the bundled Tatoeba corpus (16,174 real sentence pairs, CC-BY 2.0 FR),
its Chinese converted to Simplified with OpenCC, split by English sentence. `--data synthetic` trains on a
generated corpus (a small bilingual grammar, not real text) for tests and quick demos; `--data` also reads
`English<TAB>Chinese` files (the Tatoeba cmn.txt layout, plain or .gz) or a folder of train/valid/test .tsv;
`--hf` a local Hugging Face dataset with `en`/`zh` columns. The final report puts the test BLEU beside a
word-by-word dictionary baseline fitted on the same training split. The checkpoint keeps the tokenizers, so
`evaluate` and `translate` need only `--checkpoint`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sacrebleu
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from pytorch_in_action import config
from pytorch_in_action.data.translation import (
    TATOEBA_ATTRIBUTION,
    Pair,
    clean_text,
    load_splits,
    read_tsv,
    to_simplified,
)
from pytorch_in_action.data.translation_baseline import WordByWordTranslator
from pytorch_in_action.data.translation_batching import BucketBatchSampler, PairDataset, collate, pad
from pytorch_in_action.data.translation_tokenizer import EOS_ID, PAD_ID, build_tokenizers, decode
from pytorch_in_action.errors import PiaError
from pytorch_in_action.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer
from pytorch_in_action.train.checkpoint import load_checkpoint
from pytorch_in_action.train.distributed import DistEnv, cleanup, init_distributed
from pytorch_in_action.train.loop import Engine, EngineConfig
from pytorch_in_action.train.optim import build_optimizer
from pytorch_in_action.train.precision import autocast_ctx
from pytorch_in_action.train.run_flags import add_device_flags, add_run_flags, open_run, resolve_out
from pytorch_in_action.train.schedule import build_scheduler, seconds_per_step

ACTIONS = {
    "train": "train on the bundled Tatoeba corpus (default), the synthetic one, or your sentence pairs",
    "evaluate": "BLEU and chrF (greedy and beam), loss and token accuracy of a checkpoint on any pairs file; "
                "writes the translations beside the scores",
    "translate": "translate English sentences given on the command line (or stdin) with a checkpoint",
}


def build_parser(action: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pia translate {action}", description=ACTIONS[action],
                                formatter_class=config.HelpFormatter)
    if action == "train":
        add_run_flags(p, "translate")
        p.set_defaults(minutes=10.0)  # the bundled corpus's defaults were chosen for 10 minutes on a laptop CPU
    else:
        add_device_flags(p.add_argument_group("run"))
    dec = p.add_argument_group("decoding")
    dec.add_argument("--beam", type=config.positive_int, default=4, help="beam size for beam search (1: greedy only)")
    dec.add_argument("--length-penalty", type=float, default=1.0, help="beam score = log p / length**penalty")
    dec.add_argument("--decode-batch", type=config.positive_int, default=64, help="sentences decoded together")
    if action == "translate":
        p.add_argument("--checkpoint", type=Path, required=True, help="RUN/checkpoints/best.pt")
        p.add_argument("sentences", nargs="*", help="English sentences (default: one per line on stdin)")
        return p
    data = p.add_argument_group("data")
    if action == "evaluate":
        p.add_argument("--checkpoint", type=Path, required=True, help="RUN/checkpoints/best.pt")
        data.add_argument("--data", type=Path, help="English<TAB>Chinese file (.tsv or .tsv.gz), every line scored "
                          "(default: the run's test split, RUN/test.tsv)")
        data.add_argument("--max-sentences", type=config.non_negative_int, default=0, help="evaluate the first N only (0: all)")
        data.add_argument("--to-simplified", action=argparse.BooleanOptionalAction, default=None,
                          help="convert the Chinese references to Simplified (OpenCC) before scoring (default: "
                               "as the checkpoint was trained)")
        data.add_argument("--results-dir", type=Path,
                          help="where the scores (.json) and translations (.tsv) go (default: RUN/eval)")
        return p
    data.add_argument("--data", help="English<TAB>Chinese file (.tsv or .tsv.gz), a folder of train/valid/test "
                      ".tsv, or 'synthetic' (a generated corpus, not real text) (default: the bundled Tatoeba "
                      "corpus, CC-BY 2.0 FR)")
    data.add_argument("--hf", help="local Hugging Face dataset (save_to_disk folder or json/csv/parquet) "
                      "with 'en' and 'zh' columns")
    data.add_argument("--to-simplified", action=argparse.BooleanOptionalAction, default=True,
                      help="convert the Chinese side to Simplified characters with OpenCC (Tatoeba mixes in "
                           "Traditional); the same applies to the references of `evaluate`")
    data.add_argument("--n-pairs", type=config.positive_int, default=40_000, help="size of the synthetic corpus")
    data.add_argument("--max-chars", type=config.positive_int, default=200, help="drop pairs with a longer side")
    data.add_argument("--max-len", type=config.positive_int, default=128, help="tokens per side after truncation")
    data.add_argument("--vocab-size", type=config.positive_int, default=4000,
                      help="BPE vocabulary of each tokenizer (Chinese is split into characters before BPE, so its "
                           "vocabulary is the characters it has)")
    data.add_argument("--shared-vocab", action=argparse.BooleanOptionalAction, default=False,
                      help="one tokenizer for both languages (needed for --share-embeddings); default: English "
                           "subwords and Chinese characters apart, a smaller output layer")
    data.add_argument("--max-tokens", type=config.positive_int, default=2048,
                      help="padded tokens per batch (length bucketing); smaller batches give more steps in --minutes")
    model = p.add_argument_group("model")
    model.add_argument("--d-model", type=config.positive_int, default=256)
    model.add_argument("--n-head", type=config.positive_int, default=4)
    model.add_argument("--layers", type=config.positive_int, default=3, help="encoder and decoder layers each")
    model.add_argument("--dim-feedforward", type=config.positive_int, default=1024)
    model.add_argument("--dropout", type=config.fraction, default=0.1)
    model.add_argument("--norm-first", action=argparse.BooleanOptionalAction, default=True, help="pre-LN")
    model.add_argument("--share-embeddings", action=argparse.BooleanOptionalAction, default=False,
                       help="tie source and target embeddings (with --shared-vocab)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=config.positive_int, default=40,
                     help="at most this many epochs; the --minutes budget usually ends the run first")
    opt.add_argument("--lr", type=config.positive_float, default=2e-3, help="peak learning rate (AdamW)")
    opt.add_argument("--weight-decay", type=config.non_negative_float, default=0.01)
    opt.add_argument("--sched", default="warmup_cosine", choices=["inverse_sqrt", "warmup_cosine", "constant"],
                     help="warmup_cosine decays to 0 over the run: over the steps the --minutes budget allows "
                          "(estimated from the speed of a few steps timed before training) when that is fewer "
                          "than --epochs")
    opt.add_argument("--warmup-steps", type=config.non_negative_int, default=0,
                     help="linear warmup steps (0 with warmup_cosine: 5%% of the run's steps)")
    opt.add_argument("--label-smoothing", type=config.fraction, default=0.1)
    opt.add_argument("--grad-clip", type=config.non_negative_float, default=1.0)
    out = p.add_argument_group("output")
    out.add_argument("--eval-every-steps", type=config.non_negative_int, default=0, help="also evaluate every N steps")
    out.add_argument("--val-bleu-sentences", type=config.non_negative_int, default=300,
                     help="valid sentences decoded (greedy) for val_bleu at each evaluation")
    out.add_argument("--test", action=argparse.BooleanOptionalAction, default=True,
                     help="after training, report test BLEU (greedy and beam) of best.pt")
    return p


# -- pieces shared by the actions (importable for tests and notebooks) ----------------------------------------


def seq2seq_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], label_smoothing: float = 0.0,
                 ) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over real target tokens (padding ignored) and the number of those tokens."""
    logits = model(batch["src"], batch["tgt_in"])  # (B, T, V)
    tgt = batch["tgt_out"]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 logits -> fp32 for the loss
    loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID,
                           label_smoothing=label_smoothing)
    return loss, int((tgt != PAD_ID).sum())


def translate_texts(model: Seq2SeqTransformer, src_tok: Tokenizer, tgt_tok: Tokenizer, texts: list[str], *,
                    num_beams: int = 1, length_penalty: float = 1.0, batch_size: int = 64,
                    use_cache: bool = True) -> list[str]:
    """Translate `texts` in length-sorted batches (less padding), returned in the input order."""
    device = next(model.parameters()).device
    max_src = model.cfg.max_len
    ids = [e.ids[: max_src - 1] + [EOS_ID] for e in src_tok.encode_batch([clean_text(t) for t in texts])]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[str] = [""] * len(ids)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        src = pad([torch.tensor(ids[i]) for i in rows]).to(device)
        hyps = model.translate(src, num_beams=num_beams, length_penalty=length_penalty, use_cache=use_cache)
        for i, h in zip(rows, hyps):
            out[i] = decode(tgt_tok, h)
    return out


def bleu(hyps: list[str], refs: list[str]) -> float:
    """Corpus BLEU with sacrebleu's Chinese tokenisation (characters for CJK)."""
    return float(sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score)


@torch.no_grad()
def loss_and_accuracy(model: Seq2SeqTransformer, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Token-level loss (no smoothing) and next-token accuracy over non-padding targets."""
    sums = torch.zeros(3, dtype=torch.float64)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(batch["src"], batch["tgt_in"]).float()
        tgt = batch["tgt_out"]
        real = tgt != PAD_ID
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID, reduction="sum")
        sums += torch.tensor([float(loss), float(((logits.argmax(-1) == tgt) & real).sum()), float(real.sum())],
                             dtype=torch.float64)
    n = max(1.0, float(sums[2]))
    return {"val_loss": float(sums[0]) / n, "val_token_acc": float(sums[1]) / n}


def make_eval_fn(model_cfg: Seq2SeqConfig, valid: PairDataset, src_tok: Tokenizer, tgt_tok: Tokenizer,
                 dist: DistEnv, max_tokens: int, bleu_sentences: int, decode_batch: int = 64):
    """eval_fn for the engine: val_loss, val_token_acc on the whole valid split, greedy val_bleu on a prefix.

    Every rank evaluates the same data (the valid split is small), so the metrics agree without a reduction.
    """
    sampler = BucketBatchSampler(valid.lengths(), max_tokens, shuffle=False)
    loader = DataLoader(valid, batch_sampler=sampler, collate_fn=collate)
    pairs = valid.pairs[:bleu_sentences] if bleu_sentences > 0 else valid.pairs

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        metrics = loss_and_accuracy(model, loader, dist.device)
        hyps = translate_texts(model, src_tok, tgt_tok, [en for en, _ in pairs], batch_size=decode_batch)
        metrics["val_bleu"] = bleu(hyps, [zh for _, zh in pairs])
        return metrics

    return evaluate


def load_for_inference(checkpoint: Path, device: torch.device) -> tuple[Seq2SeqTransformer, Tokenizer, Tokenizer,
                                                                        dict[str, Any]]:
    """Model and tokenizers from a checkpoint written by `pia translate train` (self-contained)."""
    state = load_checkpoint(checkpoint, map_location="cpu")
    extra = state.get("extra", {})
    if state.get("meta", {}).get("task") != "translate" or "model" not in state or "src_tokenizer" not in extra:
        raise PiaError(f"{checkpoint} was not written by `pia translate train`")
    cfg = Seq2SeqConfig(**state["meta"]["model"])
    model = Seq2SeqTransformer(cfg)
    model.load_state_dict(state["model"])
    src_tok = Tokenizer.from_str(extra["src_tokenizer"])
    tgt_tok = Tokenizer.from_str(extra["tgt_tokenizer"])
    return model.to(device).eval(), src_tok, tgt_tok, extra


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _tokenizers(args: argparse.Namespace, train_pairs: list[Pair], out: Path, dist: DistEnv,
                ) -> tuple[Tokenizer, Tokenizer]:
    """Train on the training split (main rank), save in the run folder; on resume reuse the saved ones."""
    src_f, tgt_f = out / "tokenizer_src.json", out / "tokenizer_tgt.json"
    if args.resume is not None and src_f.is_file() and tgt_f.is_file():
        return Tokenizer.from_file(str(src_f)), Tokenizer.from_file(str(tgt_f))
    if dist.is_main:
        src_tok, tgt_tok = build_tokenizers(train_pairs, args.vocab_size, shared=args.shared_vocab)
        out.mkdir(parents=True, exist_ok=True)
        src_tok.save(str(src_f))
        tgt_tok.save(str(tgt_f))
    dist.barrier()
    return Tokenizer.from_file(str(src_f)), Tokenizer.from_file(str(tgt_f))


def train(args: argparse.Namespace) -> dict[str, Any]:
    dist = init_distributed(args.device)
    try:
        _seed_everything(args.seed)
        out = resolve_out(args, dist, "translate")
        if args.share_embeddings and not args.shared_vocab:
            raise PiaError("--share-embeddings needs --shared-vocab (use --no-share-embeddings)")
        if args.d_model % args.n_head:
            raise PiaError(f"--d-model {args.d_model} is not divisible by --n-head {args.n_head}")
        splits = load_splits(args.data, args.hf, n_pairs=args.n_pairs, seed=args.seed, max_chars=args.max_chars,
                             simplified=args.to_simplified)
        if not splits["train"]:
            raise PiaError("the training split is empty")
        baseline = WordByWordTranslator().fit(splits["train"])
        run, resume = open_run(args, dist)  # lock and check the folder before anything is written into it
        src_tok, tgt_tok = _tokenizers(args, splits["train"], out, dist)
        train_ds = PairDataset(splits["train"], src_tok, tgt_tok, args.max_len)
        valid_ds = PairDataset(splits["valid"], src_tok, tgt_tok, args.max_len)
        max_tokens = max(args.max_tokens, args.max_len)
        sampler = BucketBatchSampler(train_ds.lengths(), max_tokens, seed=args.seed, rank=dist.rank,
                                     world_size=dist.world_size)
        loader = DataLoader(train_ds, batch_sampler=sampler, collate_fn=collate, generator=torch.Generator())
        model_cfg = Seq2SeqConfig(src_tok.get_vocab_size(), tgt_tok.get_vocab_size(), args.d_model, args.n_head,
                                  args.layers, args.layers, args.dim_feedforward, args.dropout,
                                  max_len=args.max_len, norm_first=args.norm_first,
                                  share_embeddings=args.share_embeddings)
        model = Seq2SeqTransformer(model_cfg)
        if dist.is_main:
            n_params = sum(p.numel() for p in model.parameters())
            corpus = {None: f" (bundled: {TATOEBA_ATTRIBUTION})", "synthetic": " (synthetic corpus, not real text)"}
            print(f"data: {len(train_ds)} train / {len(valid_ds)} valid / {len(splits['test'])} test pairs"
                  f"{corpus.get(args.data, '') if not args.hf else ''}; vocab "
                  f"{model_cfg.src_vocab_size}/{model_cfg.tgt_vocab_size}; model {n_params / 1e6:.2f}M params; "
                  f"{len(sampler)} batches/epoch; writing to {out}")
        optimizer = build_optimizer(model, "adamw", args.lr, args.weight_decay, betas=(0.9, 0.98))
        total_steps = len(sampler) * args.epochs
        # the schedule ends with the time budget (a resumed run restores the length from its checkpoint)
        if args.minutes > 0 and args.sched == "warmup_cosine" and resume is None:
            probe = [collate([train_ds[i] for i in b]) for b in sampler.batches()[:7]]  # a random mix of lengths
            step_s = dist.broadcast_object(seconds_per_step(model, lambda m, b: seq2seq_loss(m, b), probe,
                                                            dist.device, args.amp) if dist.is_main else None)
            budget_steps = int(args.minutes * 60 / step_s)
            if budget_steps < total_steps:
                total_steps = max(args.warmup_steps + 1, budget_steps)
                if dist.is_main:
                    print(f"schedule: {step_s:.2f} s/step measured, so about {total_steps} steps "
                          f"({total_steps / len(sampler):.1f} epochs) fit in --minutes {args.minutes:g}; the learning "
                          f"rate decays to 0 over them")
        scheduler = build_scheduler(optimizer, args.sched, total_steps=total_steps, warmup_steps=args.warmup_steps)
        run.write_text("config.yaml", config.to_yaml(args))
        run.write_text("test.tsv", "".join(f"{en}\t{zh}\n" for en, zh in splits["test"]))
        smoothing = args.label_smoothing
        cfg = EngineConfig(epochs=args.epochs, amp=args.amp, grad_clip=args.grad_clip,
                           ckpt_every_steps=args.ckpt_every_steps, eval_every_steps=args.eval_every_steps,
                           best_metric="val_bleu", best_mode="max", progress=args.progress, items_name="tokens",
                           max_minutes=args.minutes,
                           extra_state={"src_tokenizer": src_tok.to_str(), "tgt_tokenizer": tgt_tok.to_str(),
                                        "to_simplified": args.to_simplified, "baseline_table": baseline.table})
        engine = Engine(model, optimizer, loader, config=cfg, dist=dist, run=run, scheduler=scheduler,
                        loss_fn=lambda m, b: seq2seq_loss(m, b, smoothing),
                        eval_fn=make_eval_fn(model_cfg, valid_ds, src_tok, tgt_tok, dist, max_tokens,
                                             args.val_bleu_sentences, args.decode_batch),
                        meta={"task": "translate", "model": model_cfg.to_dict()})
        start = time.perf_counter()
        summary = engine.fit(resume=resume)
        if dist.is_main:
            print(f"done in {(time.perf_counter() - start) / 60:.1f} min: best val BLEU {summary['best']:.2f}; run "
                  f"folder {out} (config.yaml, metrics.jsonl, tb/, tokenizer_*.json, test.tsv, checkpoints/latest.pt, "
                  f"checkpoints/best.pt)")
            if args.test and splits["test"]:
                loaded = load_for_inference(run.best, dist.device)
                test = summary["test"] = _report(loaded, splits["test"], args, dist.device, out / "test_results")
                beam = f", beam {args.beam} {test[f'bleu_beam{args.beam}']:.2f}" if args.beam > 1 else ""
                print(f"test BLEU: greedy {test['bleu_greedy']:.2f}{beam}; word-by-word dictionary baseline "
                      f"{test['bleu_baseline']:.2f} (chrF {test['chrf_greedy']:.1f} vs {test['chrf_baseline']:.1f}), "
                      f"{test['sentences']} test pairs")
        return summary
    finally:
        cleanup()


def chrf(hyps: list[str], refs: list[str]) -> float:
    """Corpus chrF (character n-gram F-score), sacrebleu's defaults."""
    return float(sacrebleu.corpus_chrf(hyps, [refs]).score)


def _report(loaded: tuple, pairs: list[Pair], args: argparse.Namespace, device: torch.device,
            save_to: Path | None = None) -> dict[str, float]:
    """Greedy and beam BLEU / chrF, loss and token accuracy of a loaded model on `pairs`, beside the word-by-word
    baseline stored in the checkpoint; printed, and with `save_to` written as `save_to`.json (the scores) and
    `save_to`.tsv (English, reference, greedy and beam translations, baseline; one line per pair)."""
    model, src_tok, tgt_tok, extra = loaded
    srcs, refs = [en for en, _ in pairs], [zh for _, zh in pairs]
    ds = PairDataset(pairs, src_tok, tgt_tok, model.cfg.max_len)
    loader = DataLoader(ds, batch_sampler=BucketBatchSampler(ds.lengths(), max(4096, model.cfg.max_len),
                                                             shuffle=False), collate_fn=collate)
    columns = {"english": srcs, "reference": refs}
    with torch.no_grad(), autocast_ctx(device, args.amp):
        result: dict[str, Any] = {k.replace("val_", "test_"): v
                                  for k, v in loss_and_accuracy(model, loader, device).items()}
        start = time.perf_counter()
        columns["greedy"] = translate_texts(model, src_tok, tgt_tok, srcs, batch_size=args.decode_batch)
        result["greedy_s"] = time.perf_counter() - start
        if args.beam > 1:
            start = time.perf_counter()
            columns[f"beam{args.beam}"] = translate_texts(model, src_tok, tgt_tok, srcs, num_beams=args.beam,
                                                          length_penalty=args.length_penalty,
                                                          batch_size=args.decode_batch)
            result["beam_s"] = time.perf_counter() - start
    if extra.get("baseline_table") is not None:
        baseline = WordByWordTranslator()
        baseline.table = extra["baseline_table"]
        columns["baseline"] = baseline.translate_all(srcs)
    for name, hyps in list(columns.items())[2:]:
        result[f"bleu_{name}"], result[f"chrf_{name}"] = bleu(hyps, refs), chrf(hyps, refs)
    result["sentences"] = len(pairs)
    print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        rows = ["\t".join(columns)] + ["\t".join(row) for row in zip(*columns.values())]
        scores, translations = save_to.with_name(save_to.name + ".json"), save_to.with_name(save_to.name + ".tsv")
        _write_atomic(translations, "\n".join(rows) + "\n")
        _write_atomic(scores, json.dumps(result, indent=1) + "\n")
        print(f"scores: {scores}; translations: {translations}")
    return result


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    run_dir = args.checkpoint.resolve().parent.parent
    data = args.data if args.data is not None else run_dir / "test.tsv"
    if args.data is None and not data.is_file():
        raise PiaError(f"no --data given and no test split next to the checkpoint ({data})")
    pairs = read_tsv(data)  # bad data is reported before the checkpoint is loaded
    if args.max_sentences > 0:
        pairs = pairs[: args.max_sentences]
    device = init_distributed(args.device).device
    loaded = load_for_inference(args.checkpoint, device)
    simplified = loaded[3].get("to_simplified", False) if args.to_simplified is None else args.to_simplified
    pairs = [(clean_text(en), to_simplified(clean_text(zh)) if simplified else clean_text(zh)) for en, zh in pairs]
    print(f"evaluating {args.checkpoint} on {len(pairs)} pairs of {data}; references "
          + ("converted to Simplified Chinese (OpenCC t2s, as in training; --no-to-simplified keeps them as is)"
             if simplified else "scored as written (no Traditional->Simplified conversion)"))
    name = data.name.removesuffix(".gz").removesuffix(".tsv").removesuffix(".txt") or "data"
    return _report(loaded, pairs, args, device, (args.results_dir or run_dir / "eval") / name)


def translate(args: argparse.Namespace) -> list[str]:
    device = init_distributed(args.device).device
    sentences = args.sentences or [line.strip() for line in sys.stdin if line.strip()]
    if not sentences:
        raise PiaError("no sentences to translate (give them as arguments or on stdin)")
    model, src_tok, tgt_tok, _ = load_for_inference(args.checkpoint, device)
    with autocast_ctx(device, args.amp):
        out = translate_texts(model, src_tok, tgt_tok, sentences, num_beams=args.beam,
                              length_penalty=args.length_penalty, batch_size=args.decode_batch)
    for line in out:
        print(line)
    return out


def main(argv: list[str]) -> int:
    run = {"train": train, "evaluate": evaluate, "translate": translate}
    return config.run_action(
        argv, "translate", {name: (text, build_parser, run[name]) for name, text in ACTIONS.items()},
        about="The default corpus is the bundled Tatoeba corpus: 16,174 real English-Chinese sentence pairs from\n"
              "tatoeba.org (CC-BY 2.0 FR), Chinese converted to Simplified. `--data synthetic` trains on a generated\n"
              "corpus instead (for tests and quick demos).")
