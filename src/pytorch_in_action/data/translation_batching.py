"""Encoded sentence pairs, padding collate and a length-bucketing batch sampler with a token budget.

Batches group sentences of similar length so little compute is spent on padding. The sampler is a pure
function of (seed, epoch, rank) and supports `set_epoch` / `set_skip` / `len`, like the engine's
`ShardedBatchSampler`, which is what makes mid-epoch resume exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tokenizers import Tokenizer
from torch import Tensor

from pytorch_in_action.data.translation_tokenizer import BOS_ID, EOS_ID, PAD_ID


class PairDataset(torch.utils.data.Dataset):
    """Token ids of (source, target) pairs: source ends with EOS, target is BOS ... EOS."""

    def __init__(self, pairs: list[tuple[str, str]], src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int = 128):
        self.pairs = pairs
        src = src_tok.encode_batch([en for en, _ in pairs])
        tgt = tgt_tok.encode_batch([zh for _, zh in pairs])
        self.src = [torch.tensor(e.ids[: max_len - 1] + [EOS_ID]) for e in src]
        self.tgt = [torch.tensor([BOS_ID] + e.ids[: max_len - 2] + [EOS_ID]) for e in tgt]

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.src[i], self.tgt[i]

    def lengths(self) -> list[int]:
        """Bucketing key of each pair: the longer of its two sides."""
        return [max(len(s), len(t)) for s, t in zip(self.src, self.tgt)]


def pad(seqs: list[Tensor], value: int = PAD_ID) -> Tensor:
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


def collate(batch: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """Pad to the batch's longest; `tgt_in` is the target shifted right (teacher forcing), `tgt_out` its labels."""
    src = pad([s for s, _ in batch])  # (B, S)
    tgt = pad([t for _, t in batch])  # (B, T+1)
    return {"src": src, "tgt_in": tgt[:, :-1], "tgt_out": tgt[:, 1:]}


class BucketBatchSampler:
    """Batches of similar-length items whose padded size (count x longest) stays within `max_tokens`.

    The batches are cut once from the items sorted by length, so their number is the same every epoch;
    each epoch reshuffles which equal-length items go together and the order of the batches.
    Ranks take every `world_size`-th batch (all ranks get the same count).
    """

    def __init__(self, lengths: list[int], max_tokens: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        if max_tokens < max(lengths, default=1):
            raise ValueError(f"max_tokens={max_tokens} is smaller than the longest item ({max(lengths)} tokens)")
        self.lengths = torch.tensor(lengths)
        self.max_tokens, self.shuffle, self.seed = max_tokens, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0
        self._sizes = self._cut(torch.sort(self.lengths, stable=True).values.tolist())

    def _cut(self, sorted_lengths: list[int]) -> list[int]:
        """Batch sizes along the sorted lengths: grow a batch while count x longest fits the budget."""
        sizes, count, longest = [], 0, 0
        for n in sorted_lengths:
            if count and (count + 1) * max(longest, n) > self.max_tokens:
                sizes.append(count)
                count, longest = 0, 0
            count, longest = count + 1, max(longest, n)
        if count:
            sizes.append(count)
        return sizes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_skip(self, n_batches: int) -> None:
        """Skip the first `n_batches` of the current epoch (resume mid-epoch)."""
        self.skip = n_batches

    def __len__(self) -> int:
        return len(self._sizes) // self.world_size

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, in order."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.shuffle:  # random order among equal lengths, then a stable sort by length
            perm = torch.randperm(len(self.lengths), generator=g)
            order = perm[torch.sort(self.lengths[perm], stable=True).indices].tolist()
        else:
            order = torch.sort(self.lengths, stable=True).indices.tolist()
        out, start = [], 0
        for size in self._sizes:
            out.append(order[start : start + size])
            start += size
        if self.shuffle:
            out = [out[i] for i in torch.randperm(len(out), generator=g).tolist()]
        out = out[: len(self) * self.world_size]
        return out[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.skip :]
