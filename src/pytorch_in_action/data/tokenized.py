"""Token-id datasets for the text recipes: texts already tokenized, held in memory, padded per batch.

`TokenizedTexts` is what the classifier and the masked-LM pretraining train on; `pad_batch` is their collate
function; `pack` turns a set of texts into full rows of a fixed length (masked-LM pretraining without padding).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def pack(ds: TokenizedTexts, max_length: int, cls_id: int) -> TokenizedTexts:
    """Concatenate the texts (each keeps its closing [SEP]) and cut the stream into rows of `max_length` tokens,
    each opened by [CLS]: no padding at all, where batches of whole texts of long-tailed lengths are mostly
    padding. Word ids (whole-word masking) are offset so that words of different texts never share an id."""
    ids_stream: list[int] = []
    words_stream: list[int] = []
    offset = 0
    for i, ids in enumerate(ds.input_ids):
        ids_stream += ids[1:]  # drop the text's own [CLS]
        if ds.word_ids is not None:
            words = ds.word_ids[i][1:]
            words_stream += [w + offset if w >= 0 else -1 for w in words]
            offset += max(words, default=-1) + 1
    n = max_length - 1
    rows = [[cls_id] + ids_stream[s:s + n] for s in range(0, len(ids_stream), n)]
    if ds.word_ids is None:
        return TokenizedTexts(rows)
    return TokenizedTexts(rows, word_ids=[[-1] + words_stream[s:s + n] for s in range(0, len(words_stream), n)])
