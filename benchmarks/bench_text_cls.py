"""Text classification on the bundled reviews' seeded test split: a character TF-IDF + logistic regression
baseline, a small BERT fine-tuned from random weights, and the same BERT after `pia mlm pretrain`.

The pretraining budget is a flag (`--minutes`): run it long (e.g. 60) on a quiet machine to search for a
configuration that beats both baselines; `--quick` is a smoke run whose numbers prove nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import markdown_table  # noqa: E402

from pytorch_in_action import config  # noqa: E402
from pytorch_in_action.data.sentiment import materialize_reviews, read_labelled, split  # noqa: E402
from pytorch_in_action.recipes import mlm_pretrain, text_classification  # noqa: E402
from pytorch_in_action.text.baselines import char_tfidf_baseline  # noqa: E402


def tfidf_baseline(parts) -> dict[str, float]:
    """The recipe's own char TF-IDF + logistic-regression baseline, fitted on train, scored on test."""
    m = char_tfidf_baseline(parts["train"].texts, parts["train"].labels, parts["test"].texts, parts["test"].labels,
                            num_labels=2, prefix="")
    return {"accuracy": m["tfidf_accuracy"], "f1": m["tfidf_f1"]}


def fine_tune(model_dir: Path, out: Path, init: str, args) -> dict[str, float]:
    flags = ["--model", str(model_dir), "--init", init, "--out", str(out), "--epochs", str(args.epochs),
             "--batch-size", "32", "--max-length", str(args.max_length), "--lr", str(args.lr), "--amp", args.amp,
             "--no-progress", "--seed", "0"]
    if args.max_train:
        flags += ["--max-train", str(args.max_train)]
    if args.max_tokens:
        flags += ["--max-tokens", str(args.max_tokens)]
    text_classification.train(config.parse_args(text_classification.build_parser("train"), flags))
    ev = config.parse_args(text_classification.build_parser("evaluate"),
                                        ["--model", str(out), "--split", "test", "--max-length", str(args.max_length),
                                         "--amp", args.amp])
    return text_classification.evaluate(ev)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (1 minute of pretraining, 2000 rows)")
    ap.add_argument("--minutes", type=float, default=10.0, help="MLM pretraining budget")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    ap.add_argument("--max-train", type=int, default=0, help="fine-tune on N rows only (0: all)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=0,
                    help="fine-tune on length-bucketed batches of at most N padded tokens (0: batches of 32 texts)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--amp", default="bf16", choices=["off", "bf16"],
                    help="bf16 only pays on CPUs with AMX or AVX512_BF16 (see /proc/cpuinfo); otherwise use off")
    ap.add_argument("--mlm-steps", type=int, default=100_000,
                    help="MLM optimizer steps at most (the cosine schedule spans the steps --minutes holds, "
                         "estimated by the recipe from a few timed steps)")
    ap.add_argument("--mlm-lr", type=float, default=5e-4)
    ap.add_argument("--mlm-batch-size", type=int, default=64)
    ap.add_argument("--wwm", action="store_true", help="whole-word masking (jieba) during pretraining")
    ap.add_argument("--pack", action="store_true", help="pretrain on packed rows of --max-length tokens")
    ap.add_argument("--snapshot-every-steps", type=int, default=0,
                    help="also fine-tune from the MLM snapshots every N steps: accuracy against pretraining minutes")
    ap.add_argument("--work", type=Path, help="folder for the runs (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.quick:
        args.minutes, args.max_train, args.epochs, args.layers, args.hidden = 1.0, 2000, 1, 2, 128
    parts = split(read_labelled(materialize_reviews(0)), seed=0)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-text-cls-"))
    rows = []
    t = time.perf_counter()
    base = tfidf_baseline(parts)
    rows.append(["char 1-3-gram TF-IDF + logistic regression", "-", base["accuracy"], base["f1"],
                 time.perf_counter() - t, 1.0])
    mlm_dir = work / "mlm"
    t = time.perf_counter()
    mlm_flags = ["--out", str(mlm_dir), "--minutes", str(args.minutes), "--steps", str(args.mlm_steps),
                 "--layers", str(args.layers), "--hidden", str(args.hidden), "--heads", str(max(2, args.hidden // 64)),
                 "--max-length", str(args.max_length), "--amp", args.amp, "--no-progress", "--ckpt-every-steps", "0",
                 "--lr", str(args.mlm_lr), "--batch-size", str(args.mlm_batch_size),
                 "--snapshot-every-steps", str(args.snapshot_every_steps)]
    mlm_flags += (["--wwm"] if args.wwm else []) + (["--pack"] if args.pack else [])
    mlm_pretrain.pretrain(config.parse_args(mlm_pretrain.build_parser(), mlm_flags))
    pre_s = time.perf_counter() - t
    pre_steps = json.loads((mlm_dir / "pretrain_summary.json").read_text())["steps"]
    # (model folder, label, pretraining seconds); snapshots first, the final model last
    inits = [(mlm_dir, "scratch", "none (random init)", 0.0)]
    for snap in sorted((mlm_dir / "snapshots").glob("step-*")) if args.snapshot_every_steps else []:
        info = json.loads((snap / "snapshot.json").read_text())
        if info["step"] < pre_steps:
            inits.append((snap, "pretrained", f"MLM, {info['step']} steps ({info['minutes']:.1f} min)",
                          60 * info["minutes"]))
    inits.append((mlm_dir, "pretrained", f"MLM, {pre_steps} steps ({pre_s / 60:.1f} min)", pre_s))
    for i, (folder, init, label, spent_s) in enumerate(inits):
        t = time.perf_counter()
        m = fine_tune(folder, work / f"cls-{i}-{init}", init, args)
        took = time.perf_counter() - t + spent_s
        rows.append([f"BERT {args.layers}x{args.hidden}", label, m["accuracy"], m["f1"], took,
                     m["accuracy"] / base["accuracy"]])
    print("## Text classification: bundled reviews, seeded test split\n")
    print(f"{platform.machine()} CPU, {len(parts['train'])} train / {len(parts['test'])} test reviews"
          f"{f' (fine-tuning on {args.max_train})' if args.max_train else ''}; {args.epochs} fine-tuning epochs, "
          f"{args.amp}; ratio = accuracy / TF-IDF accuracy{' (QUICK smoke run)' if args.quick else ''}.\n")
    print(markdown_table(["model", "pretraining", "test accuracy", "test F1", "time incl. pretraining (s)",
                          "ratio"], rows))
    scratch, best = rows[1], max(rows[2:], key=lambda r: r[2])
    won = best[2] > base["accuracy"] and best[2] > scratch[2] and best[4] <= 3600
    print(f"\nGoal: pretraining + fine-tuning within 60 minutes beats both TF-IDF ({base['accuracy']:.3f}) and no "
          f"pretraining ({scratch[2]:.3f}): **{'met' if won else 'not met'}** (best pretrained {best[2]:.3f}, "
          f"{best[1]}, {best[4] / 60:.0f} min in all).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
