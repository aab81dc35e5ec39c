"""Seeded, stratified, disjoint splits: the held-out validation part never overlaps training, test is val/."""

import numpy as np
import torch

from pytorch_in_action.lightning.datamodule import DigitsDataModule, split_indices


def test_split_is_disjoint_covering_seeded_and_stratified():
    targets = np.repeat(np.arange(5), [30, 20, 40, 10, 50]).tolist()
    train, val = split_indices(targets, 0.2, seed=0)
    assert set(train).isdisjoint(val)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(targets)))
    again_train, again_val = split_indices(targets, 0.2, seed=0)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not np.array_equal(val, split_indices(targets, 0.2, seed=1)[1])
    counts = np.bincount(np.asarray(targets)[val], minlength=5)
    assert counts.tolist() == [6, 4, 8, 2, 10]  # every class in proportion


def test_digits_datamodule_splits(digits_root):
    dm = DigitsDataModule(data_dir=str(digits_root), batch_size=16, val_fraction=0.1, seed=3, image_size=16)
    dm.setup("fit")
    assert dm.classes == [str(i) for i in range(10)]
    assert set(dm.train_indices.tolist()).isdisjoint(dm.val_indices.tolist())
    n_train_folder = len(dm.train_set.dataset)
    assert len(dm.train_indices) + len(dm.val_indices) == n_train_folder
    # the test set is the other folder: no file is shared with the training folder
    train_files = {p for p, _ in dm.train_set.dataset.samples}
    assert train_files.isdisjoint(p for p, _ in dm.test_set.samples)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (16, 3, 16, 16) and y.dtype == torch.int64
    # augmentation for training only: one training image drawn 10 times gives several different crops,
    # while the validation view of an image is always the same
    draws = [dm.train_set[0][0] for _ in range(10)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert all(torch.equal(dm.val_set[0][0], dm.val_set[0][0]) for _ in range(3))
