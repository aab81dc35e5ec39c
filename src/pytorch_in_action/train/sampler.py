"""Batch samplers whose order is a pure function of (seed, epoch, rank): the key to exact, elastic resume.

`ShardedBatchSampler`: every epoch draws one permutation from `seed + epoch` (the same on all ranks), shards it by rank and cuts it
into batches. `set_skip(n)` starts the epoch at batch `n`, so a run resumed mid-epoch sees exactly the
batches an uninterrupted run would have seen next. With `with_epoch=True` it yields `(epoch, index)` pairs
so that datasets can seed per-sample augmentation (see `data.seeded`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class ShardedBatchSampler:
    def __init__(self, num_items: int, batch_size: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = True, with_epoch: bool = False,
                 even_shards: bool = True):
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.num_items, self.batch_size, self.shuffle, self.seed = num_items, batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last, self.with_epoch = rank, world_size, drop_last, with_epoch
        self.even_shards = even_shards  # False (evaluation): every item exactly once, ranks may differ by one
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_skip(self, n_batches: int) -> None:
        """Skip the first `n_batches` of the current epoch (resume mid-epoch)."""
        self.skip = n_batches

    def _shard(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        if self.even_shards:  # every rank gets the same count (training: equal batches for DDP)
            order = order[: (self.num_items // self.world_size) * self.world_size]
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        if self.even_shards:
            n = self.num_items // self.world_size
        else:
            n = len(range(self.rank, self.num_items, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list]:
        shard = self._shard()
        for b in range(self.skip, len(self)):
            idx = shard[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(self.epoch, i) for i in idx] if self.with_epoch else idx


class StepBatchSampler:
    """Exactly `steps` batches per epoch, drawn from successive seeded permutations of the data, sharded by
    rank. Order is a pure function of (seed, epoch, batch index), so `set_skip` resumes mid-run exactly. For
    training counted in optimizer steps rather than epochs (masked-LM pretraining); a time budget is the
    engine's (`EngineConfig.max_minutes`)."""

    def __init__(self, num_items: int, batch_size: int, steps: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        if num_items < batch_size * world_size:
            raise ValueError("fewer items than one global batch")
        self.num_items, self.batch_size, self.steps, self.seed = num_items, batch_size, steps, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_skip(self, n_batches: int) -> None:
        self.skip = n_batches

    def __len__(self) -> int:
        return self.steps

    def _perm(self, k: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + 100_003 * self.epoch + k)
        return torch.randperm(self.num_items, generator=g).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        gb = self.batch_size * self.world_size  # global batch
        per_pass = self.num_items // gb  # whole global batches per permutation (the remainder is dropped)
        cached_k, perm = -1, []
        for b in range(self.skip, self.steps):
            k, j = divmod(b, per_pass)
            if k != cached_k:
                cached_k, perm = k, self._perm(k)
            start = j * gb + self.rank * self.batch_size
            yield perm[start : start + self.batch_size]
