"""`pia mlm pretrain`: a WordPiece tokenizer and a small BERT trained with masked language modeling.

Default data: the texts of the bundled review corpus's training split (labels unused; valid split for
evaluation), so the text classifier fine-tuned later never sees its test split during pretraining. The
result is a Hugging Face folder (`save_pretrained`: config.json, model.safetensors, tokenizer files) that
`AutoModelForMaskedLM` / `AutoModelForSequenceClassification` / `AutoTokenizer` load offline. The closing line
compares the held-out masked-token accuracy with a unigram guess (always the most frequent training token).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from pytorch_in_action import config
from pytorch_in_action.data.cache import cache_dir
from pytorch_in_action.data.masking import MaskingCollate
from pytorch_in_action.data.sentiment import materialize_reviews, read_labelled, split
from pytorch_in_action.data.tokenized import TokenizedTexts, pack
from pytorch_in_action.errors import PiaError
from pytorch_in_action.train.distributed import DistEnv, cleanup, init_distributed
from pytorch_in_action.train.loop import Engine, EngineConfig
from pytorch_in_action.train.optim import build_optimizer
from pytorch_in_action.train.run_flags import add_run_flags, open_run
from pytorch_in_action.train.sampler import StepBatchSampler
from pytorch_in_action.train.schedule import build_scheduler, seconds_per_step

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WHAT_IT_BUYS = (
    "What it buys: a BERT that has seen which characters go together in your text, in about 10 minutes of a laptop "
    "CPU. On the bundled reviews that does not pay: docs/benchmarks.md measured fine-tuning from 10-36 minutes of "
    "this pretraining 1-2 points below fine-tuning the same BERT from random weights, and a character TF-IDF + "
    "logistic regression (printed by `pia text-cls train` beside every score) above both. Pretraining pays with "
    "far more text and compute; to fine-tune a BERT pretrained on large Chinese corpora instead, run "
    "`pia text-cls train --model hfl/rbt3` (a hub name: downloads once) or `--model PATH` (a local Hugging Face "
    "folder).")


def default_out() -> Path:
    """Where `pia mlm pretrain` writes by default, and where `pia text-cls train` looks for a model."""
    return cache_dir() / "models" / "bert-mlm-reviews"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pia mlm pretrain", description=f"{__doc__.splitlines()[0]} {WHAT_IT_BUYS}",
                                formatter_class=config.HelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", type=Path, help="text file (one text per line) or CSV/TSV/JSONL (default: bundled "
                   "reviews, training split)")
    d.add_argument("--text-column", default="review", help="column holding the text in CSV/TSV/JSONL")
    d.add_argument("--max-texts", type=config.non_negative_int, default=0, help="use only the first N texts (0: all)")
    m = p.add_argument_group("model")
    m.add_argument("--vocab-size", type=config.positive_int, default=8000)
    m.add_argument("--limit-alphabet", type=config.positive_int, default=6000, help="characters kept before merges: raised "
                   "from the library default (1000) so Chinese characters are not [UNK]")
    m.add_argument("--layers", type=config.positive_int, default=4)
    m.add_argument("--hidden", type=config.positive_int, default=256, help="d_model; the feed-forward width is 4x")
    m.add_argument("--heads", type=config.positive_int, default=4)
    m.add_argument("--max-length", type=config.positive_int, default=128, help="tokens per sequence, [CLS]/[SEP] included")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=config.positive_int, default=2000,
                   help="optimizer steps at most; the --minutes budget usually ends the run first")
    t.add_argument("--batch-size", type=config.positive_int, default=64, help="per process")
    t.add_argument("--lr", type=config.positive_float, default=5e-4)
    t.add_argument("--weight-decay", type=config.non_negative_float, default=0.01)
    t.add_argument("--warmup-steps", type=config.non_negative_int, default=100)
    t.add_argument("--mlm-probability", type=config.fraction, default=0.15)
    t.add_argument("--wwm", action="store_true", help="whole-word masking: mask jieba words as a unit")
    t.add_argument("--pack", action="store_true",
                   help="train on the texts concatenated and cut into full --max-length rows (no padding)")
    t.add_argument("--grad-clip", type=config.non_negative_float, default=1.0)
    t.add_argument("--eval-every-steps", type=config.non_negative_int, default=0, help="0: only at the end")
    t.add_argument("--eval-texts", type=config.positive_int, default=500, help="validation texts used for the MLM loss")
    o = p.add_argument_group("output")
    o.add_argument("--snapshot-every-steps", type=config.non_negative_int, default=0,
                   help="also save a Hugging Face folder every N steps in <out>/snapshots/step-N, with the minutes "
                        "of pretraining so far (to fine-tune at several pretraining budgets from one run)")
    add_run_flags(p, "mlm", out_help=f"model + run folder (default: {default_out()})")
    p.set_defaults(ckpt_every_steps=500)
    # a coffee break by default, in bf16 where the CPU has the units for it
    p.set_defaults(minutes=10.0, amp="auto")
    return p


def load_texts(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(train texts, valid texts). Bundled: the seeded train/valid splits. User data: 2% held out."""
    if args.data is None:
        parts = split(read_labelled(materialize_reviews(args.seed)), seed=args.seed)
        train, valid = parts["train"].texts, parts["valid"].texts
    else:
        path = args.data
        if not path.is_file():
            raise PiaError(f"data file not found: {path}")
        if path.suffix.lower() in {".csv", ".tsv", ".jsonl", ".json"}:
            from pytorch_in_action.data.sentiment import _read_rows

            columns, rows = _read_rows(path)
            if rows and args.text_column not in columns:
                raise PiaError(f"{path} has no column {args.text_column!r}; its columns are {', '.join(columns)}")
            texts = [str(r.get(args.text_column) or "").strip() for r in rows]
        else:
            texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        texts = [t for t in texts if t]
        if len(texts) < 10:
            raise PiaError(f"{path} has {len(texts)} non-empty texts; at least 10 are needed")
        g = torch.Generator().manual_seed(args.seed)
        order = torch.randperm(len(texts), generator=g).tolist()
        n_valid = max(1, len(texts) // 50)
        valid, train = [texts[i] for i in order[:n_valid]], [texts[i] for i in order[n_valid:]]
    if args.max_texts:
        train = train[: args.max_texts]
    return train, valid


def train_tokenizer(texts: list[str], vocab_size: int, limit_alphabet: int):
    """WordPiece with BERT's normalizer (each CJK character its own word) wrapped as a `BertTokenizer`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=2,
                                        limit_alphabet=limit_alphabet, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return BertTokenizer(vocab=tok.get_vocab(), do_lower_case=True)


def encode(tokenizer, texts: list[str], max_length: int, wwm: bool) -> TokenizedTexts:
    """Token ids; with `wwm`, also the jieba word index of every token (-1 for [CLS]/[SEP])."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=wwm)
    if not wwm:
        return TokenizedTexts(enc["input_ids"])
    import jieba

    word_ids = []
    for text, offsets in zip(texts, enc["offset_mapping"]):
        owner, pos = [0] * len(text), 0
        for w, word in enumerate(jieba.cut(text)):
            owner[pos : pos + len(word)] = [w] * len(word)
            pos += len(word)
        word_ids.append([owner[s] if e > s else -1 for s, e in offsets])
    return TokenizedTexts(enc["input_ids"], word_ids=word_ids)


class MaskedPositionsMLM(torch.nn.Module):
    """A `BertForMaskedLM` whose prediction head runs on the masked positions only.

    Hugging Face's forward projects every position onto the vocabulary, but the loss reads only the ~15% that
    were masked; with a small encoder that projection is the largest matrix product of the step. Gathering the
    masked positions first gives the same loss for far less compute. The wrapper is what the engine (and DDP)
    trains; the wrapped model is what gets saved.
    """

    def __init__(self, mlm: torch.nn.Module) -> None:
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits of the masked positions (M, V), their labels (M,))."""
        h = self.mlm.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, C)
        keep = labels != -100
        return self.mlm.cls(h[keep]), labels[keep]  # (M, V), (M,)


def mlm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the masked positions (Hugging Face's loss with labels -100 elsewhere)."""
    logits, labels = model(batch["input_ids"], batch["attention_mask"], batch["labels"])
    return torch.nn.functional.cross_entropy(logits.float(), labels), labels.numel()


def most_frequent_token(ds: TokenizedTexts, special_ids: list[int]) -> int:
    """The most frequent non-special token id of the training texts: the unigram guess that the masked-token
    accuracy stands beside (a model that learnt nothing of context can still score its rate)."""
    counts = torch.bincount(torch.tensor([t for ids in ds.input_ids for t in ids], dtype=torch.long))
    counts[[i for i in special_ids if i < len(counts)]] = 0
    return int(counts.argmax())


def make_eval_fn(valid: TokenizedTexts, collate: MaskingCollate, dist: DistEnv, seed: int, batch_size: int,
                 guess_id: int):
    """Masked-LM loss, perplexity and accuracy on the validation texts, the same masks every time, and the
    accuracy of always answering `guess_id` on the same masked positions (`val_unigram_accuracy`)."""

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        g = torch.Generator().manual_seed(seed + 1)
        total, correct, guessed, n = 0.0, 0, 0, 0
        for s in range(0, len(valid), batch_size):
            batch = collate([valid[i] for i in range(s, min(len(valid), s + batch_size))], generator=g)
            batch = {k: v.to(dist.device) for k, v in batch.items()}
            logits, labels = model(batch["input_ids"], batch["attention_mask"], batch["labels"])
            total += float(torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
            correct += int((logits.argmax(-1) == labels).sum())
            guessed += int((labels == guess_id).sum())
            n += labels.numel()
        loss = total / max(1, n)
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0)), "val_mlm_accuracy": correct / max(1, n),
                "val_unigram_accuracy": guessed / max(1, n)}

    return evaluate


def save_snapshot(model: torch.nn.Module, tokenizer, folder: Path, info: dict[str, Any]) -> None:
    """A complete Hugging Face folder, written next to its final name and renamed into place."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "snapshot.json").write_text(json.dumps(info) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def pretrain(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    if args.hidden % args.heads:
        raise PiaError(f"--hidden {args.hidden} is not divisible by --heads {args.heads}")
    dist = init_distributed(args.device)
    started = time.monotonic()
    try:
        out = args.out or default_out()
        train_texts, valid_texts = load_texts(args)  # bad data stops here, before the run folder exists
        args.out = out
        run, resume = open_run(args, dist)
        tok_dir = out / "tokenizer"
        if dist.is_main and not (resume and (tok_dir / "tokenizer.json").exists()):
            train_tokenizer(train_texts, args.vocab_size, args.limit_alphabet).save_pretrained(tok_dir)
        dist.barrier()
        tokenizer = BertTokenizer.from_pretrained(tok_dir)
        torch.manual_seed(args.seed)
        train_ds = encode(tokenizer, train_texts, args.max_length, args.wwm)
        if args.pack:
            train_ds = pack(train_ds, args.max_length, tokenizer.cls_token_id)
        valid_ds = encode(tokenizer, valid_texts[: args.eval_texts], args.max_length, args.wwm)
        bert_config = BertConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers,
                            num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                            max_position_embeddings=max(args.max_length, 64), pad_token_id=tokenizer.pad_token_id)
        model = BertForMaskedLM(bert_config)
        n_params = sum(p.numel() for p in model.parameters())
        if dist.is_main:
            rows = f"rows of {args.max_length} packed tokens" if args.pack else "texts"
            print(f"data: {len(train_ds)} train {rows} / {len(valid_ds)} valid texts; vocab {len(tokenizer)}; "
                  f"BERT {args.layers}x{args.hidden} ({n_params / 1e6:.1f}M parameters); writing to {out}")
            if args.data is None:
                print("note: on the bundled reviews this pretraining does not beat fine-tuning from random weights "
                      "(docs/benchmarks.md); see `pia mlm pretrain --help` for what it buys and for pretrained "
                      "Chinese models")
        try:
            sampler = StepBatchSampler(len(train_ds), args.batch_size, args.steps, seed=args.seed, rank=dist.rank,
                                       world_size=dist.world_size)
        except ValueError:
            raise PiaError(f"{len(train_ds)} texts are fewer than one batch; lower --batch-size") from None
        collate = MaskingCollate(tokenizer, args.mlm_probability)
        loader = DataLoader(train_ds, batch_sampler=sampler, collate_fn=collate, generator=torch.Generator())
        optimizer = build_optimizer(model, "adamw", args.lr, args.weight_decay)
        total_steps = args.steps
        if args.minutes and resume is None and args.steps > 8:  # a resumed run keeps its checkpoint's schedule
            # the cosine decays to 0 over the steps the budget holds, estimated from a few timed steps
            batches = (collate([train_ds[i] for i in idx]) for idx in StepBatchSampler(len(train_ds), args.batch_size, 7))
            step_s = dist.broadcast_object(seconds_per_step(MaskedPositionsMLM(model), mlm_loss, batches, dist.device,
                                                            args.amp) if dist.is_main else None)
            fit = int(args.minutes * 60 / step_s)
            if fit < total_steps:
                total_steps = sampler.steps = max(2, fit)  # the run ends with its schedule or its budget
                if dist.is_main:
                    print(f"schedule: {step_s:.2f} s/step measured, so about {total_steps} of the {args.steps} steps "
                          f"fit in --minutes {args.minutes:g}; the learning rate decays to 0 over them")
        scheduler = build_scheduler(optimizer, "warmup_cosine", total_steps=total_steps,
                                    warmup_steps=min(args.warmup_steps, max(1, total_steps // 10)))
        run.write_text("config.yaml", config.to_yaml(args))
        eval_every = args.snapshot_every_steps or args.eval_every_steps
        cfg = EngineConfig(epochs=1, amp=args.amp, grad_clip=args.grad_clip, ckpt_every_steps=args.ckpt_every_steps,
                           eval_every_steps=eval_every, progress=args.progress, items_name="masked_tokens",
                           max_minutes=args.minutes or 0.0)
        guess_id = most_frequent_token(train_ds, tokenizer.all_special_ids)
        evaluate = make_eval_fn(valid_ds, collate, dist, args.seed, args.batch_size, guess_id)

        def evaluate_and_snapshot(m: torch.nn.Module) -> dict[str, float]:
            metrics = evaluate(m)
            if args.snapshot_every_steps and dist.is_main:
                info = {"step": engine.global_step, "minutes": (time.monotonic() - started) / 60, **metrics}
                save_snapshot(model, tokenizer, out / "snapshots" / f"step-{engine.global_step:06d}", info)
            return metrics

        meta = {"recipe": "mlm", "layers": args.layers, "hidden": args.hidden, "vocab": len(tokenizer)}
        engine = Engine(MaskedPositionsMLM(model), optimizer, loader, config=cfg, dist=dist, run=run,
                        scheduler=scheduler, loss_fn=mlm_loss,
                        eval_fn=evaluate_and_snapshot, meta=meta)
        summary = engine.fit(resume=resume)
        if dist.is_main:
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
            last = summary["last"]
            (out / "pretrain_summary.json").write_text(json.dumps({"steps": summary["global_step"], **last}))
            guess = tokenizer.convert_ids_to_tokens(guess_id)
            acc, unigram = last.get("val_mlm_accuracy", float("nan")), last.get("val_unigram_accuracy", float("nan"))
            verdict = "" if acc > unigram else " -- no better than the guess: give it more steps (--minutes)"
            print(f"done: {summary['global_step']} steps in {(time.monotonic() - started) / 60:.1f} min; held-out "
                  f"masked tokens predicted right: {acc:.1%}, against {unigram:.1%} for always guessing the most "
                  f"frequent training token {guess!r}{verdict} (val MLM loss {last.get('val_loss', float('nan')):.3f}); "
                  f"Hugging Face folder {out} (config.json, model.safetensors, tokenizer files)")
        return summary
    finally:
        cleanup()


def main(argv: list[str]) -> int:
    return config.run_action(argv, "mlm", {
        "pretrain": ("train a WordPiece tokenizer and a small BERT with masked language modeling",
                     lambda _: build_parser(), pretrain)})
