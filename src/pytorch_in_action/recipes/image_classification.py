"""`pia image train|evaluate`: an ImageNet-style image-classification trainer.

Reads any ImageNet-layout folder (`train/<class>/*`, `val/<class>/*`); with no `--data` it materialises the
bundled digits in that same layout. Runs on one CPU or under torchrun on many GPUs and nodes, resumes
exactly from the latest checkpoint, and writes everything under one run folder.
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from pytorch_in_action import config
from pytorch_in_action.data.digits import materialize_digits
from pytorch_in_action.data.imagefolder import BadImageError, check_layout, first_image_size, image_folder
from pytorch_in_action.data.seeded import SeededTransform
from pytorch_in_action.data.synthetic import SyntheticImages
from pytorch_in_action.data.transforms import build_transforms
from pytorch_in_action.errors import PiaError
from pytorch_in_action.models.factory import build_model
from pytorch_in_action.train.checkpoint import export_safetensors, load_checkpoint
from pytorch_in_action.train.distributed import DistEnv, cleanup, init_distributed
from pytorch_in_action.train.loop import Engine, EngineConfig
from pytorch_in_action.train.metrics import topk_correct
from pytorch_in_action.train.optim import build_optimizer
from pytorch_in_action.train.run_flags import add_device_flags, add_run_flags, open_run, resolve_out
from pytorch_in_action.train.sampler import ShardedBatchSampler
from pytorch_in_action.train.schedule import SCHEDULES, build_scheduler

DEFAULT_WORKERS = min(2, os.cpu_count() or 1)  # the input pipeline benchmark shows 2 keep up on small images


def build_parser(action: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pia image {action}", description=__doc__.splitlines()[0],
                                formatter_class=config.HelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", type=Path, help="ImageNet-layout folder with train/ and val/ (default: bundled digits)")
    data.add_argument("--synthetic", action="store_true", help="random images, for throughput measurements")
    data.add_argument("--image-size", type=config.positive_int, help="model input size (default: the dataset's, or 224 when larger)")
    data.add_argument("--workers", type=config.non_negative_int, default=DEFAULT_WORKERS, help="data-loading processes per rank")
    data.add_argument("--skip-bad-images", action="store_true", help="scan and skip unreadable images (else: stop)")
    data.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None,
                      help="random horizontal flip (default: on for images > 64 px)")
    model = p.add_argument_group("model")
    model.add_argument("--arch", default="small_cnn", help="small_cnn or any torchvision classification model")
    model.add_argument("--pretrained", action="store_true", help="torchvision weights from your torch hub cache")
    model.add_argument("--dropout", type=config.fraction, help="dropout before the classifier (default: the model's)")
    model.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster with bf16)")
    model.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks")
    data.add_argument("--batch-size", type=config.positive_int, default=64, help="per process")
    if action == "train":
        add_run_flags(p, "image")
        opt = p.add_argument_group("optimisation")
        opt.add_argument("--epochs", type=config.positive_int, default=10, help="total epochs (also when resuming)")
        opt.add_argument("--opt", default="sgd", choices=["sgd", "adamw"], help="optimizer")
        opt.add_argument("--lr", type=config.positive_float, default=0.1, help="peak learning rate")
        opt.add_argument("--momentum", type=config.non_negative_float, default=0.9, help="SGD momentum")
        opt.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True, help="Nesterov momentum")
        opt.add_argument("--weight-decay", type=config.non_negative_float, default=5e-4, help="not applied to biases and norms")
        opt.add_argument("--sched", default="warmup_cosine", choices=SCHEDULES, help="stepped once per optimizer step")
        opt.add_argument("--warmup-epochs", type=config.non_negative_float, default=1.0, help="linear warmup length")
        opt.add_argument("--step-epochs", type=config.positive_float, default=30.0, help="decay interval of --sched step")
        opt.add_argument("--gamma", type=config.positive_float, default=0.1, help="decay factor of --sched step")
        opt.add_argument("--label-smoothing", type=config.fraction, default=0.0, help="cross-entropy label smoothing")
        opt.add_argument("--grad-clip", type=config.non_negative_float, default=0.0, help="max gradient norm (0: off)")
        opt.add_argument("--accum-steps", type=config.positive_int, default=1, help="micro-batches per optimizer step")
    else:
        p.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint written by `pia image train`")
        add_device_flags(p.add_argument_group("run"))
        p.set_defaults(seed=0)
    return p


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _datasets(args: argparse.Namespace, dist: DistEnv, train_split: bool = True) -> tuple[Any, Any, list[str], int]:
    """(train, val, classes, image_size) with transforms applied per sample under seeds; without `train_split`
    (evaluation) only val/ is read and the train entry is None."""
    if args.synthetic:
        size = args.image_size or 224
        train, val = SyntheticImages(2048, size, 1000, seed=args.seed), SyntheticImages(256, size, 1000, seed=1)
        return SeededTransform(train, None) if train_split else None, SeededTransform(val, None), val.classes, size
    if args.data is None:
        root = materialize_digits() if dist.is_main else None
        dist.barrier()
        root = root or materialize_digits()
    else:
        root = args.data
    classes = check_layout(root, ("train", "val") if train_split else ("val",))
    train = image_folder(root / "train", skip_bad=args.skip_bad_images) if train_split else None
    val = image_folder(root / "val", skip_bad=args.skip_bad_images)
    w, h = first_image_size(train or val)
    size = args.image_size or (max(w, h) if max(w, h) <= 64 else 224)
    val_t = build_transforms(size, train=False)
    if not train_split:
        return None, SeededTransform(val, val_t), classes, size
    train_t = build_transforms(size, train=True, hflip=args.hflip)
    return SeededTransform(train, train_t, args.seed), SeededTransform(val, val_t), classes, size


def _loader(ds, sampler: ShardedBatchSampler, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(ds, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0, generator=torch.Generator())


def _make_eval_fn(val_loader: DataLoader, dist: DistEnv, channels_last: bool):
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        sums = torch.zeros(4, dtype=torch.float64, device=dist.device)  # loss, top1, top5, count
        for images, target in val_loader:
            images, target = images.to(dist.device, non_blocking=True), target.to(dist.device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images).float()
            top1, top5 = topk_correct(logits, target, (1, 5))
            sums += torch.tensor([float(F.cross_entropy(logits, target, reduction="sum")), top1, top5,
                                  len(target)], dtype=torch.float64, device=dist.device)
        dist.all_reduce_sum(sums)
        n = max(1.0, float(sums[3]))
        return {"val_loss": float(sums[0]) / n, "val_top1": float(sums[1]) / n, "val_top5": float(sums[2]) / n}

    return evaluate


def _check_input_size(model: torch.nn.Module, size: int, arch: str) -> None:
    """One blank image through the model before anything is written: an image size the architecture cannot
    take (too small for its downsampling, or not the size it was built for) is a clear error, not a crash."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size))
    except (RuntimeError, ValueError, AssertionError) as err:
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise PiaError(f"--arch {arch} cannot take {size}px images (--image-size): {reason}") from None
    finally:
        model.train(was_training)


def _prepare(args: argparse.Namespace, dist: DistEnv, train_split: bool = True):
    """Data, loaders and model shared by train and evaluate (which reads val/ only)."""
    _seed_everything(args.seed)
    train_ds, val_ds, classes, size = _datasets(args, dist, train_split)
    val_sampler = ShardedBatchSampler(len(val_ds), args.batch_size, shuffle=False, rank=dist.rank,
                                      world_size=dist.world_size, drop_last=False, even_shards=False)
    val_loader = _loader(val_ds, val_sampler, args.workers, dist.device)
    model = build_model(args.arch, len(classes), pretrained=args.pretrained, dropout=args.dropout)
    _check_input_size(model, size, args.arch)
    torch.manual_seed(args.seed + dist.rank)  # same initial weights everywhere, independent dropout per rank
    if getattr(args, "sync_bn", False) and dist.is_distributed:
        if dist.device.type == "cpu":
            raise PiaError("--sync-bn needs GPUs (torch's SyncBatchNorm has no CPU kernel); on CPU use "
                           "--arch small_cnn_gn or per-rank BatchNorm")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(dist.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return train_ds, val_loader, classes, size, model


def train(args: argparse.Namespace) -> dict[str, Any]:
    dist = init_distributed(args.device)
    try:
        out = resolve_out(args, dist, "image")
        train_ds, val_loader, classes, size, model = _prepare(args, dist)
        if dist.is_main:
            print(f"data: {len(train_ds)} train / {len(val_loader.dataset)} val images, {len(classes)} classes, "
                  f"{size}px; model: {args.arch}; world size {dist.world_size}; writing to {out}")
        sampler = ShardedBatchSampler(len(train_ds), args.batch_size, shuffle=True, seed=args.seed, rank=dist.rank,
                                      world_size=dist.world_size, drop_last=True, with_epoch=True)
        loader = _loader(train_ds, sampler, args.workers, dist.device)
        steps_per_epoch = max(1, len(sampler) // args.accum_steps)
        optimizer = build_optimizer(model, args.opt, args.lr, args.weight_decay, args.momentum, args.nesterov)
        scheduler = build_scheduler(optimizer, args.sched, total_steps=steps_per_epoch * args.epochs,
                                    warmup_steps=round(args.warmup_epochs * steps_per_epoch),
                                    step_size=round(args.step_epochs * steps_per_epoch), gamma=args.gamma)
        run, resume = open_run(args, dist)
        run.write_text("config.yaml", config.to_yaml(args))
        smoothing, channels_last = args.label_smoothing, args.channels_last

        def loss_fn(m: torch.nn.Module, batch) -> tuple[torch.Tensor, int]:
            images, target = batch
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            return F.cross_entropy(m(images), target, label_smoothing=smoothing), len(target)

        cfg = EngineConfig(epochs=args.epochs, amp=args.amp, grad_clip=args.grad_clip, accum_steps=args.accum_steps,
                           ckpt_every_steps=args.ckpt_every_steps, best_metric="val_top1", progress=args.progress,
                           items_name="images", max_minutes=args.minutes,
                           extra_state={"classes": classes, "image_size": size})
        meta = {"arch": args.arch, "num_classes": len(classes)}
        engine = Engine(model, optimizer, loader, config=cfg, dist=dist, run=run, scheduler=scheduler,
                        loss_fn=loss_fn, eval_fn=_make_eval_fn(val_loader, dist, channels_last), meta=meta)
        summary = engine.fit(resume=resume)
        if dist.is_main:
            export_safetensors(model, out / "model.safetensors")
            best = summary["best"]
            print(f"done: best val top-1 {best:.4f}; run folder {out} (config.yaml, metrics.jsonl, tb/, "
                  f"checkpoints/latest.pt, checkpoints/best.pt, model.safetensors)")
        return summary
    finally:
        cleanup()


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    dist = init_distributed(args.device)
    try:
        state = load_checkpoint(args.checkpoint, map_location="cpu")
        meta, extra = state.get("meta", {}), state.get("extra", {})
        if "arch" not in meta or "model" not in state:
            raise PiaError(f"{args.checkpoint} was not written by `pia image train`")
        args.arch, args.image_size = meta["arch"], args.image_size or extra.get("image_size")
        _, val_loader, classes, _, model = _prepare(args, dist, train_split=False)
        if len(classes) != meta["num_classes"]:
            raise PiaError(f"checkpoint has {meta['num_classes']} classes, the data has {len(classes)}")
        trained_on = extra.get("classes")
        if trained_on is not None and list(trained_on) != classes:
            only = sorted(set(trained_on) ^ set(classes))
            raise PiaError(f"the checkpoint was trained on other classes than val/ holds: {', '.join(only[:5])}")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise PiaError(f"checkpoint does not fit {args.arch}: {str(err).splitlines()[0]}") from None
        model.eval()
        from pytorch_in_action.train.precision import autocast_ctx

        with torch.no_grad(), autocast_ctx(dist.device, args.amp):
            metrics = _make_eval_fn(val_loader, dist, args.channels_last)(model)
        if dist.is_main:
            print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics
    finally:
        cleanup()


def _clean(err: PiaError) -> PiaError:
    """Errors raised inside DataLoader workers arrive with a traceback in the message: keep our line."""
    text = str(err)
    if "Traceback" not in text:
        return err
    for line in reversed(text.strip().splitlines()):
        if "Error: " in line:
            return type(err)(line.split("Error: ", 1)[1].strip())
    return err


def main(argv: list[str]) -> int:
    actions = {"train": ("train a classifier on an ImageNet-layout folder (default: bundled digits)", build_parser,
                         train),
               "evaluate": ("top-1/top-5 and loss of a checkpoint on the val/ split", build_parser, evaluate)}
    try:
        return config.run_action(argv, "image", actions)
    except BadImageError as err:
        raise _clean(err) from None
