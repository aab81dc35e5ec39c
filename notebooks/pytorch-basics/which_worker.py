import os

from torch.utils.data import Dataset


class WhichWorker(Dataset):
    """Sample i is the process id of the worker that loaded it."""

    def __init__(self, n: int = 8):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return os.getpid()
