"""`pia text-cls train --engine hf`: the same fine-tuning through `transformers.Trainer`.

Same data, model, head initialisation, optimizer family and metrics as the project's loop; the Trainer brings
its own sampler, schedule and checkpoints (under <out>/hf/). A callback writes the same metrics.jsonl lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from pytorch_in_action.data.sentiment import Labelled
from pytorch_in_action.errors import PiaError
from pytorch_in_action.recipes.text_cls_metrics import classification_metrics

_SCHEDULES = {"constant": "constant_with_warmup", "cosine": "cosine", "warmup_cosine": "cosine",
              "step": "linear", "onecycle": "linear", "inverse_sqrt": "inverse_sqrt"}


class _Rows:
    """A map-style dataset of dicts, as the Trainer's collator expects."""

    def __init__(self, input_ids: list[list[int]], labels: list[int]):
        self.input_ids, self.labels = input_ids, labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def train_with_trainer(args: argparse.Namespace, parts: dict[str, Labelled], num_labels: int,
                       amp: str = "off") -> dict[str, Any]:
    """`amp` is the resolved choice ("off" or "bf16"; see `train.precision.resolve_amp`)."""
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    from pytorch_in_action.recipes.text_classification import load_model

    if amp == "fp16":
        raise PiaError("--engine hf supports --amp off or bf16 here")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, model = load_model(args.model, num_labels, args.init, args.seed)

    def rows(data: Labelled) -> _Rows:
        return _Rows(tokenizer(data.texts, truncation=True, max_length=args.max_length)["input_ids"], data.labels)

    def compute_metrics(pred) -> dict[str, float]:
        return classification_metrics(pred.label_ids.tolist(), np.argmax(pred.predictions, -1).tolist(),
                                      num_labels, prefix="")

    history: list[dict[str, Any]] = []
    metrics_file = out / "metrics.jsonl"
    if not args.resume:
        metrics_file.unlink(missing_ok=True)

    class MetricsJsonl(TrainerCallback):
        def on_evaluate(self, targs, state, control, metrics=None, **kwargs):
            record = {"epoch": round(state.epoch or 0), "step": state.global_step}
            for key, value in (metrics or {}).items():
                if key.startswith("eval_") and isinstance(value, (int, float)):
                    record["val_" + key[len("eval_"):]] = float(value)
            history.append(record)
            if state.is_world_process_zero:
                with open(metrics_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")

    steps_per_epoch = -(-len(parts["train"]) // args.batch_size)
    targs = TrainingArguments(
        output_dir=str(out / "hf"), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=args.lr, weight_decay=args.weight_decay,
        lr_scheduler_type=_SCHEDULES[args.sched], warmup_steps=round(args.warmup_ratio * steps_per_epoch * args.epochs),
        max_grad_norm=args.grad_clip or 1e9, eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch",
        save_total_limit=2, seed=args.seed, data_seed=args.seed, report_to=[], bf16=amp == "bf16",
        use_cpu=args.device == "cpu", disable_tqdm=not args.progress, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=targs, data_collator=DataCollatorWithPadding(tokenizer),
                      train_dataset=rows(parts["train"]), eval_dataset=rows(parts["valid"]),
                      compute_metrics=compute_metrics, callbacks=[MetricsJsonl()])
    has_ckpt = any((out / "hf").glob("checkpoint-*")) if (out / "hf").exists() else False
    trainer.train(resume_from_checkpoint=bool(args.resume and has_ckpt))
    if trainer.is_world_process_zero():
        trainer.save_model(str(out / "model"))
        tokenizer.save_pretrained(out / "model")
    best = max((h.get("val_accuracy", 0.0) for h in history), default=None)
    return {"last": history[-1] if history else {}, "best": best, "history": history,
            "global_step": trainer.state.global_step}
