"""Masked-language-model inputs: pick ~15% of the tokens (or of whole words), then BERT's 80/10/10 rule.

`mask_tokens` is the rule on a padded batch; `MaskingCollate` pads a list of `TokenizedTexts` items and masks
them, as the collate function of a masked-LM loader.
"""

from __future__ import annotations

import torch

from pytorch_in_action.data.tokenized import pad_batch


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, word_ids: torch.Tensor | None, *,
                mask_id: int, vocab_size: int, prob: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (masked inputs, labels with -100 where no prediction is asked).

    With `word_ids` (B, T) (-1 for special/padding), whole words are masked together: words are drawn in
    random order until ~`prob` of the sequence's tokens are chosen. Without, every token is its own word.
    Chosen tokens become [MASK] 80% of the time, a random token 10%, and stay unchanged 10%.
    """
    B, T = input_ids.shape
    if word_ids is None:
        word_ids = torch.arange(T).expand(B, T).masked_fill(special, -1)  # (B, T)
    chosen = torch.zeros((B, T), dtype=torch.bool)
    for b in range(B):
        units = torch.unique(word_ids[b][word_ids[b] >= 0])
        n_tokens = int((word_ids[b] >= 0).sum())
        if n_tokens == 0:
            continue
        target = max(1, round(prob * n_tokens))
        order = units[torch.randperm(len(units), generator=generator)]
        count = 0
        for u in order.tolist():
            if count >= target:
                break
            where = word_ids[b] == u
            size = int(where.sum())
            if count + size > target and count > 0:
                continue  # this word would overshoot; try a smaller one
            chosen[b] |= where
            count += size
    labels = input_ids.masked_fill(~chosen, -100)
    r = torch.rand((B, T), generator=generator)
    inputs = input_ids.clone()
    inputs[chosen & (r < 0.8)] = mask_id
    random_tok = chosen & (r >= 0.8) & (r < 0.9)
    inputs[random_tok] = torch.randint(vocab_size, (int(random_tok.sum()),), generator=generator)
    return inputs, labels


class MaskingCollate:
    """Pad a batch, then mask it (global RNG in training, which the engine's checkpoints restore)."""

    def __init__(self, tokenizer, prob: float):
        self.pad_id, self.mask_id = tokenizer.pad_token_id, tokenizer.mask_token_id
        self.special_ids = torch.tensor(tokenizer.all_special_ids)
        self.vocab_size, self.prob = len(tokenizer), prob

    def __call__(self, items: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        batch = pad_batch(items, self.pad_id)
        ids = batch["input_ids"]
        special = torch.isin(ids, self.special_ids)
        words = batch.pop("word_ids", None)
        batch["input_ids"], batch["labels"] = mask_tokens(ids, special, words, mask_id=self.mask_id,
                                                          vocab_size=self.vocab_size, prob=self.prob,
                                                          generator=generator)
        return batch
