"""ImageClassifier + DigitsDataModule: an interrupted run resumes from last.ckpt and reaches good accuracy."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from pytorch_in_action.lightning import DigitsDataModule, ImageClassifier
from pytorch_in_action.lightning.fit import build_trainer

pytestmark = pytest.mark.slow


class Recorder(Callback):
    """Records which epochs ran; optionally stops the run after a given epoch (a simulated crash)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.epochs: list[int] = []
        self.stop_after = stop_after

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.stop_after:
            trainer.should_stop = True


def _parts(root):
    L.seed_everything(0, verbose=False)
    dm = DigitsDataModule(data_dir=str(root), batch_size=32, image_size=16, seed=0)
    return dm, ImageClassifier(width=8, lr=1e-2)


@pytest.fixture(scope="module")
def interrupted_then_resumed(digits_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    dm, model = _parts(digits_root)
    first = Recorder(stop_after=0)
    trainer = _trainer(out, first)
    trainer.fit(model, datamodule=dm)
    steps_one_epoch = trainer.global_step
    last = out / "checkpoints" / "last.ckpt"
    saved_epoch = torch.load(last, map_location="cpu", weights_only=False)["epoch"]

    dm2, model2 = _parts(digits_root)
    second = Recorder()
    trainer2 = _trainer(out, second)
    trainer2.fit(model2, datamodule=dm2, ckpt_path=str(last))
    val_acc = float(trainer2.callback_metrics["val_acc"])
    test = trainer2.test(model2, datamodule=dm2, verbose=False)[0]
    return dict(out=out, first=first, second=second, steps_one_epoch=steps_one_epoch, saved_epoch=saved_epoch,
                trainer=trainer2, val_acc=val_acc, test=test)


def _trainer(out, recorder):
    trainer = build_trainer(out, max_epochs=2, accelerator="cpu", progress=False)
    trainer.callbacks.append(recorder)
    return trainer


def test_resume_continues_from_last_checkpoint(interrupted_then_resumed):
    r = interrupted_then_resumed
    assert r["first"].epochs == [0]
    assert r["saved_epoch"] == 0
    assert r["second"].epochs == [1]  # epoch 0 is not repeated
    assert r["trainer"].global_step == 2 * r["steps_one_epoch"]  # optimizer steps continue where they stopped
    assert (r["out"] / "checkpoints" / "best.ckpt").exists()


def test_two_epochs_reach_good_accuracy_on_held_out_test(interrupted_then_resumed):
    r = interrupted_then_resumed
    assert r["val_acc"] > 0.85
    assert r["test"]["test_acc"] > 0.85
