"""Random images for throughput runs (`--synthetic`): no decoding, no disk, only the model's cost."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class SyntheticImages(Dataset):
    def __init__(self, size: int = 1281, image_size: int = 224, num_classes: int = 1000, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.pool = torch.randn(64, 3, image_size, image_size, generator=g)  # reused: generation is not measured
        self.targets = torch.randint(num_classes, (size,), generator=g)
        self.size, self.classes = size, [str(i) for i in range(num_classes)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index = key[1] if isinstance(key, tuple) else key
        return self.pool[index % len(self.pool)], int(self.targets[index])
