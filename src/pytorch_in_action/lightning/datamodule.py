"""LightningDataModules over ImageNet-layout folders: seeded, stratified validation split, test on `val/`.

`train/` is split into the images the model learns from and a held-out validation part that drives
checkpoint selection and early stopping; the folder's `val/` split is the test set, never looked at while
choosing a model. The two index lists are disjoint by construction and kept on the object for inspection.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import numpy as np
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Subset

from pytorch_in_action.data.digits import materialize_digits
from pytorch_in_action.data.imagefolder import check_layout, first_image_size, image_folder
from pytorch_in_action.data.transforms import build_transforms


class ImageFolderDataModule(L.LightningDataModule):
    """`root/train/<class>/*` -> train + held-out val (seeded, stratified); `root/val/<class>/*` -> test."""

    def __init__(self, data_dir: str | None = None, batch_size: int = 64, num_workers: int = 0,
                 val_fraction: float = 0.1, seed: int = 0, image_size: int | None = None,
                 hflip: bool | None = None, skip_bad_images: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.classes: list[str] = []
        self.train_indices: np.ndarray = np.empty(0, dtype=np.int64)
        self.val_indices: np.ndarray = np.empty(0, dtype=np.int64)

    def root(self) -> Path:
        return Path(self.data_dir)

    def prepare_data(self) -> None:
        """Runs once per node (rank 0): materialise bundled data if this module has any."""
        self.root()

    def setup(self, stage: str | None = None) -> None:
        if self.classes:
            return
        hp = self.hparams
        root = self.root()
        self.classes = check_layout(root)
        full = image_folder(root / "train", skip_bad=hp.skip_bad_images)
        w, h = first_image_size(full)
        size = hp.image_size or (max(w, h) if max(w, h) <= 64 else 224)
        self.image_size = size
        self.train_indices, self.val_indices = split_indices(full.targets, hp.val_fraction, hp.seed)
        augmented = image_folder(root / "train", skip_bad=hp.skip_bad_images)
        augmented.transform = build_transforms(size, train=True, hflip=hp.hflip)  # augmentation: train only
        full.transform = build_transforms(size, train=False)
        self.train_set = Subset(augmented, self.train_indices.tolist())
        self.val_set = Subset(full, self.val_indices.tolist())
        self.test_set = image_folder(root / "val", skip_bad=hp.skip_bad_images)
        self.test_set.transform = build_transforms(size, train=False)

    def _loader(self, ds, shuffle: bool) -> DataLoader:
        n = self.hparams.num_workers
        return DataLoader(ds, batch_size=self.hparams.batch_size, shuffle=shuffle, num_workers=n,
                          persistent_workers=n > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class DigitsDataModule(ImageFolderDataModule):
    """The bundled scikit-learn digits (written once as an ImageFolder tree) behind the same interface."""

    def root(self) -> Path:
        if self.data_dir is None:
            self.data_dir = os.fspath(materialize_digits())
        return Path(self.data_dir)


def split_indices(targets: list[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified (train, val) index arrays over `targets`, each sorted; disjoint and covering."""
    idx = np.arange(len(targets))
    counts = np.bincount(np.asarray(targets))
    n_val = int(np.ceil(val_fraction * len(targets)))
    # stratify when every class can appear on both sides; tiny folders fall back to a plain seeded split
    stratify = targets if n_val >= np.count_nonzero(counts) and counts[counts > 0].min() >= 2 else None
    train, val = train_test_split(idx, test_size=n_val, stratify=stratify, random_state=seed)
    return np.sort(train), np.sort(val)
