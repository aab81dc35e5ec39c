"""Per-sample seeded augmentation: the random crop of sample i in epoch e depends only on (seed, e, i).

That makes augmentation independent of worker count, worker scheduling and where a run was resumed, which is
what lets an interrupted run continue bit for bit. Pair it with `ShardedBatchSampler(with_epoch=True)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset


class SeededTransform(Dataset):
    """Wrap a dataset of (sample, target); apply `transform` under a seed derived from (seed, epoch, index)."""

    def __init__(self, dataset: Dataset, transform: Callable | None, seed: int = 0):
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample, target = self.dataset[index]
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
                sample = self.transform(sample)
        return sample, target
