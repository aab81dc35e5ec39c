"""A Lightning Trainer with the project's run-folder conventions, and `train_with_lightning`, which runs it from
`pia image train`'s options (a library entry used by the Lightning notebook; the `pia` command has one engine)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from pytorch_in_action.lightning.datamodule import DigitsDataModule, ImageFolderDataModule
from pytorch_in_action.lightning.module import ImageClassifier
from pytorch_in_action.train.precision import resolve_amp

PRECISION = {"off": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


def build_trainer(out: str | Path, max_epochs: int, patience: int = 5, accelerator: str = "auto",
                  precision: str = "32-true", progress: bool = True, **kwargs: Any) -> L.Trainer:
    """Trainer writing `out/checkpoints/{best,last}.ckpt` and TensorBoard logs under `out/tb`.

    Checkpoints are chosen on held-out validation accuracy; early stopping watches validation loss.
    """
    out = Path(out)
    best = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_acc", mode="max",
                           save_last=True, save_top_k=1)
    stop = EarlyStopping(monitor="val_loss", mode="min", patience=patience)
    return L.Trainer(default_root_dir=out, max_epochs=max_epochs, accelerator=accelerator, precision=precision,
                     callbacks=[best, stop], logger=TensorBoardLogger(out, name="tb", version=""),
                     enable_progress_bar=progress, enable_model_summary=False, **kwargs)


def train_with_lightning(args: argparse.Namespace) -> dict[str, Any]:
    """Train with Lightning from `pia image train` options; returns best/last checkpoints and metrics.

    Uses: data, image_size, workers, hflip, skip_bad_images, arch, pretrained, batch_size, device, amp, seed,
    progress, epochs, opt, lr, momentum, nesterov, weight_decay, sched, warmup_epochs, label_smoothing,
    grad_clip, accum_steps, out, resume ("latest" -> out/checkpoints/last.ckpt, or a path).
    """
    L.seed_everything(args.seed, workers=True, verbose=False)
    out = Path(args.out)
    common = dict(batch_size=args.batch_size, num_workers=args.workers, seed=args.seed, image_size=args.image_size,
                  hflip=args.hflip, skip_bad_images=args.skip_bad_images)
    dm = DigitsDataModule(**common) if args.data is None else ImageFolderDataModule(str(args.data), **common)
    dm.prepare_data()
    dm.setup("fit")
    model = ImageClassifier(num_classes=len(dm.classes), arch=args.arch, pretrained=args.pretrained, opt=args.opt,
                            lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum,
                            nesterov=args.nesterov, sched=args.sched, warmup_epochs=args.warmup_epochs,
                            label_smoothing=args.label_smoothing)
    accelerator = {"auto": "auto", "cpu": "cpu", "cuda": "gpu"}[args.device]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # under torchrun/SLURM: one process per device, Lightning's DDP on the existing group
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        placement = dict(devices=local, num_nodes=world // local, strategy="ddp")
    else:
        placement = dict(devices=1)
    on_gpu = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    amp = resolve_amp(args.amp, torch.device("cuda" if on_gpu else "cpu"))  # "auto" -> off, bf16 or fp16
    trainer = build_trainer(out, args.epochs, accelerator=accelerator, precision=PRECISION[amp],
                            progress=args.progress, gradient_clip_val=args.grad_clip or None,
                            accumulate_grad_batches=args.accum_steps, **placement)
    ckpt_path = None
    if args.resume == "latest":
        last = out / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.exists() else None
    elif args.resume is not None:
        ckpt_path = str(args.resume)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    best_path = trainer.checkpoint_callback.best_model_path
    test = trainer.test(model, datamodule=dm, ckpt_path=best_path or None, verbose=False)[0]
    summary = {
        "best": float(trainer.checkpoint_callback.best_model_score or 0.0),  # held-out val accuracy
        "test_acc": float(test["test_acc"]),  # on the folder's val/ split
        "test_loss": float(test["test_loss"]),
        "epochs": trainer.current_epoch,
        "best_ckpt": best_path,
        "last_ckpt": str(out / "checkpoints" / "last.ckpt"),
    }
    if trainer.is_global_zero:
        print(f"done: held-out val acc {summary['best']:.4f}, test (val/) acc {summary['test_acc']:.4f}; "
              f"run folder {out} (checkpoints/best.ckpt, checkpoints/last.ckpt, tb/)")
    return summary
