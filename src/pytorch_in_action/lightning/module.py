"""`ImageClassifier`: any model from the library's factory (SmallCNN by default) as a LightningModule."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from pytorch_in_action.models.factory import build_model
from pytorch_in_action.models.small_cnn import SmallCNN
from pytorch_in_action.train.optim import build_optimizer
from pytorch_in_action.train.schedule import build_scheduler


class ImageClassifier(L.LightningModule):
    """Cross-entropy classifier with one Accuracy metric per stage, so train, val and test never share state.

    Optimiser and schedule come from the library's engine (`train.optim`, `train.schedule`): no weight decay
    on biases and norms, warmup + cosine stepped once per optimizer step.
    """

    def __init__(self, num_classes: int = 10, arch: str = "small_cnn", pretrained: bool = False, width: int = 32,
                 dropout: float = 0.1, opt: str = "adamw", lr: float = 3e-3, weight_decay: float = 1e-4, momentum: float = 0.9,
                 nesterov: bool = True, sched: str = "warmup_cosine", warmup_epochs: float = 0.5,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if arch in {"small_cnn", "small_cnn_gn"} and not pretrained:  # the library's own CNN, size adjustable
            norm = "group" if arch == "small_cnn_gn" else "batch"
            self.model: nn.Module = SmallCNN(num_classes, width=width, dropout=dropout, norm=norm)
        else:  # any torchvision architecture by name (width and dropout do not apply)
            self.model = build_model(arch, num_classes, pretrained=pretrained)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, metric: MulticlassAccuracy) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        metric.update(logits, y)  # counts correct/total over the epoch (and across ranks under DDP)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log(f"{stage}_acc", metric, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", self.train_acc)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test", self.test_acc)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch[0]).argmax(dim=1)

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        opt = build_optimizer(self.model, hp.opt, hp.lr, hp.weight_decay, hp.momentum, hp.nesterov)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs or 1)
        sched = build_scheduler(opt, hp.sched, total_steps=total, warmup_steps=round(hp.warmup_epochs * per_epoch))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
