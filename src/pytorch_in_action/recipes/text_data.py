"""Plumbing shared by the text recipes: tokenized datasets, padding collate, and a step-count batch sampler."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Dataset


class TokenizedTexts(Dataset):
    """Token id lists (plus optional labels / word ids) held in memory; items are plain dicts."""

    def __init__(self, input_ids: Sequence[list[int]], labels: Sequence[int] | None = None,
                 word_ids: Sequence[list[int]] | None = None):
        self.input_ids, self.labels, self.word_ids = list(input_ids), labels, word_ids

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.input_ids[i]}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        if self.word_ids is not None:
            item["word_ids"] = self.word_ids[i]
        return item


def pad_batch(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad `input_ids` (and `word_ids` with -1) to the longest item; build the attention mask."""
    T = max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(items), T), dtype=torch.long)
    for b, it in enumerate(items):
        n = len(it["input_ids"])
        ids[b, :n] = torch.tensor(it["input_ids"])
        mask[b, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if "labels" in items[0]:
        batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
    if "word_ids" in items[0]:
        words = torch.full((len(items), T), -1, dtype=torch.long)
        for b, it in enumerate(items):
            words[b, : len(it["word_ids"])] = torch.tensor(it["word_ids"])
        batch["word_ids"] = words
    return batch


class StepBatchSampler:
    """Exactly `steps` batches per epoch, drawn from successive seeded permutations of the data, sharded by
    rank; stops early once `minutes` have passed (all ranks agree through `agree`). Order is a pure function
    of (seed, epoch, batch index), so `set_skip` resumes mid-run exactly."""

    def __init__(self, num_items: int, batch_size: int, steps: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, minutes: float | None = None,
                 agree: Callable[[bool], bool] | None = None):
        if num_items < batch_size * world_size:
            raise ValueError("fewer items than one global batch")
        self.num_items, self.batch_size, self.steps, self.seed = num_items, batch_size, steps, seed
        self.rank, self.world_size, self.minutes, self.agree = rank, world_size, minutes, agree
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
        deadline = None if self.minutes is None else time.monotonic() + 60 * self.minutes
        cached_k, perm = -1, []
        for b in range(self.skip, self.steps):
            if deadline is not None:
                stop = time.monotonic() > deadline
                if (self.agree(stop) if self.agree else stop):
                    return
            k, j = divmod(b, per_pass)
            if k != cached_k:
                cached_k, perm = k, self._perm(k)
            start = j * gb + self.rank * self.batch_size
            yield perm[start : start + self.batch_size]
