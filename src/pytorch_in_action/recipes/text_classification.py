"""`pia text-cls train|evaluate|predict`: fine-tune a Hugging Face sequence classifier on `label,review` rows.

`--model` takes any local Hugging Face folder or hub name that `AutoModelForSequenceClassification` can load
(a hub name needs internet). Offline, the default is the small BERT written by `pia mlm pretrain` (run it
first: nothing is trained behind your back); `--init scratch` keeps its architecture and tokenizer but starts
from random weights. Every score is printed and logged beside two baselines fitted on the same training split and
scored on the same evaluation split: the majority-class rate and a character n-gram TF-IDF + logistic
regression (`text.baselines`). Metrics come from scikit-learn.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader

from pytorch_in_action import config
from pytorch_in_action.data.sentiment import Labelled, materialize_reviews, read_labelled, split
from pytorch_in_action.data.tokenized import TokenizedTexts, pad_batch
from pytorch_in_action.data.translation_batching import BucketBatchSampler
from pytorch_in_action.errors import PiaError
from pytorch_in_action.models.hf_loading import weights_error
from pytorch_in_action.recipes.mlm_pretrain import default_out
from pytorch_in_action.text.baselines import text_baselines
from pytorch_in_action.train.distributed import DistEnv, cleanup, init_distributed
from pytorch_in_action.train.loop import Engine, EngineConfig
from pytorch_in_action.train.metrics import classification_metrics
from pytorch_in_action.train.optim import build_optimizer
from pytorch_in_action.train.precision import autocast_ctx
from pytorch_in_action.train.run import RunDir
from pytorch_in_action.train.run_flags import add_device_flags, add_run_flags, open_run, resolve_out
from pytorch_in_action.train.sampler import ShardedBatchSampler
from pytorch_in_action.train.schedule import SCHEDULES, build_scheduler


def build_parser(action: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pia text-cls {action}", description=__doc__.splitlines()[0],
                                formatter_class=config.HelpFormatter)
    help_model = "run folder of `pia text-cls train`, or a Hugging Face model folder / hub name"
    p.add_argument("--model", default=None if action != "train" else str(default_out()),
                   required=action != "train", help=help_model if action != "train" else
                   "Hugging Face model folder or hub name (default: the `pia mlm pretrain` output)")
    p.add_argument("--batch-size", type=config.positive_int, default=32)
    p.add_argument("--max-length", type=config.positive_int, default=128)
    if action == "train":
        add_run_flags(p, "text-cls")
    else:
        add_device_flags(p)
    if action == "predict":
        p.add_argument("texts", nargs="*", help="texts to classify (default: one per line from --input or stdin)")
        p.add_argument("--input", type=Path, help="file with one text per line")
        return p
    p.add_argument("--data", type=Path, help="CSV/TSV/JSONL of labelled texts (default: bundled reviews)")
    p.add_argument("--text-column", default="review")
    p.add_argument("--label-column", default="label")
    if action == "evaluate":
        p.add_argument("--seed", type=int, default=0, help="seed of the data split")
        p.add_argument("--split", choices=["all", "train", "valid", "test"],
                       help="part of --data to score (default: test for the bundled data, all for yours)")
        p.add_argument("--baseline-data", type=Path,
                       help="labelled file the baselines are fitted on (default: the training split recorded in "
                            "the --model run folder, else the training split of --data when --split is valid/test)")
        return p
    p.add_argument("--valid-data", type=Path, help="validation file (default: a seeded 10%% split of --data)")
    p.add_argument("--max-train", type=config.non_negative_int, default=0, help="use only N training rows (0: all)")
    p.add_argument("--init", default="pretrained", choices=["pretrained", "scratch"])
    p.add_argument("--max-tokens", type=config.non_negative_int, default=0,
                   help="train on batches of similar-length texts holding at most N padded tokens instead of "
                        "--batch-size texts (less padding, faster when lengths vary; 0: off)")
    p.add_argument("--epochs", type=config.positive_int, default=3)
    p.add_argument("--lr", type=config.positive_float, default=1e-4)
    p.add_argument("--weight-decay", type=config.non_negative_float, default=0.01)
    p.add_argument("--sched", default="warmup_cosine", choices=SCHEDULES)
    p.add_argument("--warmup-ratio", type=config.fraction, default=0.1)
    p.add_argument("--grad-clip", type=config.non_negative_float, default=1.0)
    return p


# -- data and model ---------------------------------------------------------------------------------------
def load_splits(args: argparse.Namespace) -> dict[str, Labelled]:
    """train/valid(/test) rows: the bundled corpus or --data, split with the seed unless --valid-data is given."""
    path = args.data or materialize_reviews(args.seed)
    data = read_labelled(path, args.text_column, args.label_column, binary=False)
    if getattr(args, "valid_data", None):
        valid = read_labelled(args.valid_data, args.text_column, args.label_column, binary=False)
        parts = {"train": data, "valid": valid, "test": Labelled([], [])}
    else:
        parts = split(data, seed=args.seed)
    if getattr(args, "max_train", 0):
        parts["train"] = Labelled(parts["train"].texts[: args.max_train], parts["train"].labels[: args.max_train])
    return parts


def resolve_model_dir(name: str) -> str:
    """A run folder of this recipe holds its model in model/; anything else is passed to from_pretrained."""
    path = Path(name)
    if (path / "model" / "config.json").is_file():
        return str(path / "model")
    if path == default_out() and not path.exists():
        raise PiaError(f"no --model given and no pretrained model at {path}: run `pia mlm pretrain` first, or "
                       "pass --model with a Hugging Face folder or hub name")
    return name


def load_model(name: str, num_labels: int, init: str = "pretrained", seed: int = 0):
    """(tokenizer, classifier) from a folder or hub name; `init=scratch` keeps only config and tokenizer."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    src = resolve_model_dir(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src)
        hf_config = AutoConfig.from_pretrained(src, num_labels=num_labels)
    except (OSError, ValueError) as err:
        raise PiaError(f"cannot load a model from {name!r}: {str(err).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None:
        raise PiaError(f"the tokenizer of {name!r} has no padding token")
    if num_labels == 2:
        hf_config.id2label, hf_config.label2id = {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
    torch.manual_seed(seed)  # the new classification head starts from the same weights in every engine
    if init == "scratch":
        model = AutoModelForSequenceClassification.from_config(hf_config)
    else:
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
        try:
            model = AutoModelForSequenceClassification.from_pretrained(src, config=hf_config)
        except Exception as err:  # a pickle the weights-only loader refuses, a file cut short...: one line
            raise weights_error(src, err) from None
        finally:
            hf_logging.set_verbosity(verbosity)
    return tokenizer, model


def tokenize(tokenizer, data: Labelled, max_length: int) -> TokenizedTexts:
    return TokenizedTexts(tokenizer(data.texts, truncation=True, max_length=max_length)["input_ids"], data.labels)


# -- the project's own loop ---------------------------------------------------------------------------------
def cls_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy of the batch (Hugging Face computes it from `labels`)."""
    return model(**batch).loss, len(batch["labels"])


def predict_proba(model: torch.nn.Module, ds: TokenizedTexts, pad_id: int, batch_size: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(class probabilities (N, K), per-item loss (N,)) in dataset order; batches of similar lengths."""
    order = sorted(range(len(ds)), key=lambda i: len(ds.input_ids[i]))  # little padding per batch
    probs, losses = [], []
    for s in range(0, len(ds), batch_size):
        batch = pad_batch([ds[i] for i in order[s:s + batch_size]], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels", None)
        logits = model(**batch).logits.float()
        probs.append(logits.softmax(-1).cpu())
        if labels is not None:
            losses.append(F.cross_entropy(logits, labels, reduction="none").cpu())
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order)] = torch.arange(len(order))  # sorted position of each dataset item
    return torch.cat(probs)[back], (torch.cat(losses)[back] if losses else torch.empty(0))


def write_predictions(path: Path, labels: list[int], probs: torch.Tensor) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "pred"] + [f"prob_{k}" for k in range(probs.shape[1])])
        for y, p in zip(labels, probs.tolist()):
            w.writerow([y, max(range(len(p)), key=p.__getitem__)] + [f"{v:.6f}" for v in p])
    tmp.replace(path)


def make_eval_fn(valid: TokenizedTexts, pad_id: int, num_labels: int, args, dist: DistEnv, run: RunDir,
                 baselines: dict[str, float]):
    """Every rank scores the whole validation set (small), so metrics need no reduction and are exact. The
    baselines' scores on the same set ride along in every record, so each line of metrics.jsonl reads alone."""

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        probs, losses = predict_proba(model, valid, pad_id, args.batch_size, dist.device)
        preds = probs.argmax(-1).tolist()
        if dist.is_main:
            write_predictions(run.root / "val_predictions.csv", valid.labels, probs)
        return {"val_loss": float(losses.mean()), **classification_metrics(valid.labels, preds, num_labels),
                **baselines}

    return evaluate


def fit_baselines(train: Labelled, scored: Labelled, num_labels: int, prefix: str) -> dict[str, float]:
    """Majority class and char TF-IDF + logistic regression, fitted on `train`, scored on `scored`."""
    return text_baselines(train.texts, train.labels, scored.texts, scored.labels, num_labels, prefix)


def standing(metrics: dict[str, float], prefix: str = "val_") -> str:
    """The model's accuracy and F1 beside the baselines', and which side of them it lands on."""
    nan = float("nan")
    acc, f1, macro = (metrics.get(f"{prefix}{k}", nan) for k in ("accuracy", "f1", "macro_f1"))
    text = f"accuracy {acc:.4f}, F1 {f1:.4f}, macro F1 {macro:.4f}"
    if f"{prefix}tfidf_accuracy" not in metrics:
        return text
    tfidf, majority = metrics[f"{prefix}tfidf_accuracy"], metrics[f"{prefix}majority_accuracy"]
    gap = round(acc - tfidf, 4)
    verdict = ("the model is level with" if gap == 0 else
               f"the model is {abs(gap):.4f} {'above' if gap > 0 else 'below'}") + " the TF-IDF baseline"
    if acc <= majority:
        verdict += ", and no better than always answering the majority class"
    return (f"{text} | majority class {majority:.4f} | char TF-IDF + logistic regression accuracy {tfidf:.4f}, "
            f"F1 {metrics[f'{prefix}tfidf_f1']:.4f} | {verdict}")


def train_native(args, dist: DistEnv, out: Path, parts: dict[str, Labelled], num_labels: int) -> dict[str, Any]:
    tokenizer, model = load_model(args.model, num_labels, args.init, args.seed)
    train_ds = tokenize(tokenizer, parts["train"], args.max_length)
    valid_ds = tokenize(tokenizer, parts["valid"], args.max_length)
    if args.max_tokens:
        longest = max(len(ids) for ids in train_ds.input_ids)
        if args.max_tokens < longest:
            raise PiaError(f"--max-tokens {args.max_tokens} is smaller than the longest training text ({longest} "
                           f"tokens after --max-length {args.max_length}); give at least that many")
        sampler = BucketBatchSampler([len(ids) for ids in train_ds.input_ids], args.max_tokens, shuffle=True,
                                     seed=args.seed, rank=dist.rank, world_size=dist.world_size)
    else:
        sampler = ShardedBatchSampler(len(train_ds), args.batch_size, shuffle=True, seed=args.seed, rank=dist.rank,
                                      world_size=dist.world_size, drop_last=False)
    pad_id = tokenizer.pad_token_id
    loader = DataLoader(train_ds, batch_sampler=sampler, collate_fn=lambda items: pad_batch(items, pad_id),
                        generator=torch.Generator())
    total = len(sampler) * args.epochs
    optimizer = build_optimizer(model, "adamw", args.lr, args.weight_decay)
    scheduler = build_scheduler(optimizer, args.sched, total_steps=total, warmup_steps=round(args.warmup_ratio * total))
    run, resume = open_run(args, dist)
    run.write_text("config.yaml", config.to_yaml(args))
    cfg = EngineConfig(epochs=args.epochs, amp=args.amp, grad_clip=args.grad_clip,
                       ckpt_every_steps=args.ckpt_every_steps, best_metric="val_accuracy", progress=args.progress,
                       items_name="texts", max_minutes=args.minutes)
    meta = {"recipe": "text-cls", "model": args.model, "init": args.init, "num_labels": num_labels}
    baselines = fit_baselines(parts["train"], parts["valid"], num_labels, "val_") if dist.is_main else None
    baselines = dist.broadcast_object(baselines)
    engine = Engine(model, optimizer, loader, config=cfg, dist=dist, run=run, scheduler=scheduler,
                    loss_fn=lambda m, b: cls_loss(m, b),  # looked up at call time (tests wrap it)
                    eval_fn=make_eval_fn(valid_ds, pad_id, num_labels, args, dist, run, baselines), meta=meta)
    summary = engine.fit(resume=resume)
    if dist.is_main:
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
    return summary


def train(args: argparse.Namespace) -> dict[str, Any]:
    dist = init_distributed(args.device)
    try:
        parts = load_splits(args)
        num_labels = max(2, max(parts["train"].labels + parts["valid"].labels) + 1)
        resolve_out(args, dist, "text-cls")
        if dist.is_main:
            print(f"data: {len(parts['train'])} train / {len(parts['valid'])} valid texts, {num_labels} labels; "
                  f"model: {args.model} ({args.init}); writing to {args.out}")
        summary = train_native(args, dist, args.out, parts, num_labels)
        if dist.is_main:
            print(f"done: validation {standing(summary['last'])}; run folder {args.out} (metrics.jsonl, model/)")
        return summary
    finally:
        cleanup()


def baseline_training_split(args: argparse.Namespace, data: Labelled, chosen: str) -> tuple[Labelled | None, str]:
    """The labelled texts `evaluate` fits its baselines on, and where they come from: --baseline-data, else the
    training split the --model run folder records (the model's own), else the training split of --data."""
    if args.baseline_data:
        return read_labelled(args.baseline_data, args.text_column, args.label_column, binary=False), \
            str(args.baseline_data)
    run_config = Path(args.model) / "config.yaml"
    if run_config.is_file() and (Path(args.model) / "model" / "config.json").is_file():
        saved = yaml.safe_load(run_config.read_text(encoding="utf-8")) or {}
        run_args = argparse.Namespace(
            data=Path(saved["data"]) if saved.get("data") else None,
            valid_data=Path(saved["valid_data"]) if saved.get("valid_data") else None,
            text_column=saved.get("text_column", "review"), label_column=saved.get("label_column", "label"),
            seed=saved.get("seed", 0), max_train=saved.get("max_train", 0))
        try:
            return load_splits(run_args)["train"], f"the training split of {args.model}"
        except PiaError as err:
            return None, f"the run's training data cannot be read ({err})"
    if chosen in {"valid", "test"}:
        return data, "the training split of --data"
    return None, "no training split known: pass --baseline-data, or --model a `pia text-cls train` run folder"


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    device = init_distributed(args.device).device
    try:
        chosen = args.split or ("test" if args.data is None else "all")
        path = args.data or materialize_reviews(args.seed)
        data = read_labelled(path, args.text_column, args.label_column, binary=False)
        parts = split(data, seed=args.seed) if chosen != "all" else {}
        baseline_train, baseline_source = baseline_training_split(args, parts.get("train", data), chosen)
        if chosen != "all":
            data = parts[chosen]
        tokenizer, model = load_model(args.model, _num_labels(args.model))
        if max(data.labels) >= model.config.num_labels:
            raise PiaError(f"the data has label {max(data.labels)}, the model only {model.config.num_labels} labels")
        model.to(device).eval()
        with torch.no_grad(), autocast_ctx(device, args.amp):
            probs, losses = predict_proba(model, tokenize(tokenizer, data, args.max_length), tokenizer.pad_token_id,
                                          args.batch_size, device)
        num_labels = model.config.num_labels
        metrics = {"loss": float(losses.mean()),
                   **classification_metrics(data.labels, probs.argmax(-1).tolist(), num_labels, "")}
        if baseline_train is not None:
            metrics.update(fit_baselines(baseline_train, data, num_labels, ""))
            fitted = f"baselines fitted on {baseline_source}, {len(baseline_train)} texts"
        else:
            fitted = f"baselines not fitted: {baseline_source}"
        print(f"{path} ({chosen}, {len(data)} texts): loss {metrics['loss']:.4f}, {standing(metrics, '')} ({fitted})")
        return metrics
    finally:
        cleanup()


def _num_labels(name: str) -> int:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model_dir(name)).num_labels
    except (OSError, ValueError) as err:
        raise PiaError(f"cannot load a model from {name!r}: {str(err).splitlines()[0]}") from None


def predict(args: argparse.Namespace) -> list[tuple[str, float]]:
    texts = list(args.texts)
    if not texts:
        if args.input and not args.input.is_file():
            raise PiaError(f"input file not found: {args.input}")
        source = args.input.read_text(encoding="utf-8") if args.input else sys.stdin.read()
        texts = [line.strip() for line in source.splitlines() if line.strip()]
    if not texts:
        raise PiaError("no texts to classify (give them as arguments, with --input, or on stdin)")
    device = init_distributed(args.device).device
    try:
        tokenizer, model = load_model(args.model, _num_labels(args.model))
        model.to(device).eval()
        ds = TokenizedTexts(tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"])
        with torch.no_grad(), autocast_ctx(device, args.amp):
            probs, _ = predict_proba(model, ds, tokenizer.pad_token_id, args.batch_size, device)
        names = model.config.id2label
        results = []
        for text, p in zip(texts, probs):
            k = int(p.argmax())
            results.append((names.get(k, str(k)), float(p[k])))
            print(f"{names.get(k, k)}\t{float(p[k]):.4f}\t{text}")
        return results
    finally:
        cleanup()


def main(argv: list[str]) -> int:
    return config.run_action(argv, "text-cls", {
        "train": ("fine-tune a sequence classifier, scored beside a majority-class and a TF-IDF baseline",
                  build_parser, train),
        "evaluate": ("accuracy, F1 and macro F1 on a labelled file (default: the bundled test split), beside\n"
                     "             the same baselines", build_parser, evaluate),
        "predict": ("label and probability for each input text", build_parser, predict)})
