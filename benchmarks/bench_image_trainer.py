"""The image trainer against a bare PyTorch loop, bf16 autocast against fp32, and the input pipeline.

Run: .venv/bin/python benchmarks/bench_image_trainer.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, markdown_table  # noqa: E402

from pytorch_in_action.data.digits import materialize_digits  # noqa: E402
from pytorch_in_action.data.seeded import SeededTransform  # noqa: E402
from pytorch_in_action.data.synthetic import SyntheticImages  # noqa: E402
from pytorch_in_action.data.transforms import build_transforms  # noqa: E402
from pytorch_in_action.models.small_cnn import SmallCNN  # noqa: E402
from pytorch_in_action.train.distributed import DistEnv  # noqa: E402
from pytorch_in_action.train.loop import Engine, EngineConfig  # noqa: E402
from pytorch_in_action.train.sampler import ShardedBatchSampler  # noqa: E402


def trainer_overhead(n_items: int, batch: int) -> list:
    """Engine (progress bar, loss bookkeeping, scheduler) vs a bare loop: same model, data, batch, process."""
    ds = SeededTransform(SyntheticImages(n_items, 32, 10), None)
    model = SmallCNN(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sampler = ShardedBatchSampler(len(ds), batch, seed=0, with_epoch=True)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=0, generator=torch.Generator())

    def loss_fn(m, b):
        x, y = b
        return F.cross_entropy(m(x), y), len(y)

    def engine_epoch():
        with contextlib.redirect_stdout(io.StringIO()):  # the per-epoch summary line is not part of the table
            Engine(model, opt, loader, config=EngineConfig(epochs=1, progress=True), dist=DistEnv(),
                   loss_fn=loss_fn).fit()

    def bare_epoch():
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    c = compare(engine_epoch, bare_epoch, warmup=1, repeats=5)
    ips = len(sampler) * batch
    return [[f"small_cnn 32px, batch {batch}", ips / c.ours_s, ips / c.ref_s, c.speedup]]


def _train_steps(model, opt, x, y, steps: int, bf16: bool) -> None:
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def amp_speedup(sizes: list[int], batch: int, steps: int) -> list:
    rows = []
    for size in sizes:
        model = torchvision.models.resnet18(num_classes=10).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        y = torch.randint(10, (batch,))

        c = compare(partial(_train_steps, model, opt, x, y, steps, True),
                    partial(_train_steps, model, opt, x, y, steps, False), warmup=1, repeats=5)
        rows.append([f"resnet18 {size}px, batch {batch}", batch * steps / c.ours_s, batch * steps / c.ref_s,
                     c.speedup])
    return rows


def amp_accuracy(epochs: int) -> list:
    """Same demo run in fp32 and bf16: best val top-1 of each."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for amp in ("off", "bf16"):
            out = Path(tmp) / amp
            cmd = [sys.executable, "-m", "pytorch_in_action", "image", "train", "--epochs", str(epochs), "--amp", amp,
                   "--out", str(out), "--no-progress", "--channels-last"]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - start
            best = max(json.loads(line)["val_top1"] for line in (out / "metrics.jsonl").read_text().splitlines())
            rows.append([f"small_cnn digits, {epochs} epochs, amp={amp}", best, wall])
    return rows


def input_pipeline(batch: int) -> list:
    """Loader-only images/s on the bundled digits (decode + augmentation) per worker count."""
    from pytorch_in_action.data.imagefolder import image_folder

    root = materialize_digits()
    ds = SeededTransform(image_folder(root / "train"), build_transforms(32, train=True), seed=0)
    rows = []
    for workers in (0, 1, 2):
        sampler = ShardedBatchSampler(len(ds), batch, seed=0, with_epoch=True)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, generator=torch.Generator(),
                            persistent_workers=workers > 0)
        for _ in loader:  # warm-up: worker start-up, file cache
            pass
        start = time.perf_counter()
        for _ in loader:
            pass
        rows.append([f"digits 32px loader, {workers} workers", len(sampler) * batch / (time.perf_counter() - start)])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    q = args.quick
    print("## Image trainer")
    print(f"\n{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads. "
          "Interleaved runs, median of per-pair ratios.\n")
    print("Trainer overhead (goal: `pia image train` engine at least 0.95x the bare loop):\n")
    print(markdown_table(["setup", "engine img/s", "bare loop img/s", "engine / bare"],
                         trainer_overhead(512 if q else 2048, 64)))
    print("\nbf16 autocast vs fp32, training step, channels_last (goal: at least 2x at 128 px):\n")
    print(markdown_table(["model", "bf16 img/s", "fp32 img/s", "speed-up"],
                         amp_speedup([64] if q else [64, 128], 32, 2 if q else 4)))
    print("\nAccuracy with bf16 (goal: top-1 within 1 point of fp32):\n")
    print(markdown_table(["run", "best val top-1", "wall s"], amp_accuracy(2 if q else 8)))
    print("\nInput pipeline (training runs at the engine img/s above; the loader must be faster):\n")
    print(markdown_table(["loader", "img/s"], input_pipeline(64)))


if __name__ == "__main__":
    main()
