"""The LightningCLI trains from a YAML file; `train_with_lightning` runs from `pia image train` options."""

import numpy as np
import pytest
import yaml
from PIL import Image

from pytorch_in_action.config import parse_args
from pytorch_in_action.lightning import cli_main, train_with_lightning
from pytorch_in_action.recipes.image_classification import build_parser

pytestmark = pytest.mark.slow


def test_lightning_cli_fits_from_yaml(digits_root, tmp_path):
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "limit_train_batches": 6, "limit_val_batches": 3,
                    "enable_progress_bar": False, "logger": False, "default_root_dir": str(tmp_path)},
        "model": {"width": 8, "lr": 0.01},
        "data": {"class_path": "pytorch_in_action.lightning.datamodule.DigitsDataModule",
                 "init_args": {"data_dir": str(digits_root), "batch_size": 32, "image_size": 16}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = cli_main(["fit", "--config", str(path)])
    assert cli.trainer.global_step == 6
    assert cli.model.hparams.num_classes == 10  # linked from the data module
    assert cli.model.hparams.width == 8 and cli.model.hparams.lr == 0.01
    assert "val_acc" in cli.trainer.callback_metrics
    assert list((tmp_path / "checkpoints").glob("*.ckpt"))
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())  # the resolved config is kept with the run
    assert saved["model"]["width"] == 8 and saved["trainer"]["max_epochs"] == 1


def _tiny_folder(root, n_classes=3, per_class=8, size=12):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(n_classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = (rng.random((size, size, 3)) * 80 + 60 * c).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_train_with_lightning_from_pia_options_and_resume(tmp_path):
    data = _tiny_folder(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["--data", str(data), "--epochs", "1", "--batch-size", "8", "--workers", "0",
            "--device", "cpu", "--opt", "adamw", "--lr", "0.01", "--no-progress", "--out", str(out)]
    args = parse_args(build_parser("train"), argv)
    first = train_with_lightning(args)
    assert first["epochs"] == 1
    assert (out / "checkpoints" / "last.ckpt").exists() and first["best_ckpt"].endswith("best.ckpt")
    assert 0.0 <= first["test_acc"] <= 1.0 and 0.0 <= first["best"] <= 1.0

    args = parse_args(build_parser("train"), [*argv[:-2], "--epochs", "2", "--out", str(out), "--resume"])
    second = train_with_lightning(args)
    assert second["epochs"] == 2  # continued from last.ckpt, one more epoch
