import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info


class NoisyIndex(Dataset):
    """Returns NumPy noise drawn from a Generator held by the dataset."""

    def __init__(self, n: int = 16):
        self.n, self.rng = n, np.random.default_rng(0)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.from_numpy(self.rng.normal(size=3))


def reseed_numpy(worker_id: int) -> None:
    """worker_init_fn: give this worker's copy of the dataset its own NumPy generator."""
    ds = get_worker_info().dataset                      # this worker's copy
    ds.rng = np.random.default_rng(torch.initial_seed() % 2**32)
