"""The key/value cache that makes autoregressive decoding of a Transformer decoder cost O(T) per new token."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["KVCache"]


@dataclass
class KVCache:
    """Decoder state carried between decoding steps (one entry per decoder layer, all tensors batch-first).

    - `self_kv[i]`: (k, v) of layer i's self-attention for every target position decoded so far, each
      (B, nh, t, hs); grown by `append` at every step (None before the first step).
    - `cross_kv[i]`: (k, v) of layer i's cross-attention, the projected memory, each (B, nh, S, hs); computed
      once from the encoder output, since the memory never changes while decoding.
    - `memory_key_padding_mask`: (B, S) bool, True at padded source positions, or None.
    Beam search keeps one row per hypothesis: `reorder(beam_idx)` picks the rows the surviving beams came from.
    """

    cross_kv: list[tuple[Tensor, Tensor]]
    memory_key_padding_mask: Tensor | None = None
    self_kv: list[tuple[Tensor, Tensor] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.self_kv:
            self.self_kv = [None] * len(self.cross_kv)

    @property
    def seq_len(self) -> int:
        """Number of target positions already in the cache (the position of the next token)."""
        first = self.self_kv[0]
        return 0 if first is None else first[0].size(2)

    def append(self, i: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new positions' keys/values (B, nh, t_new, hs) of layer i; return all of them so far."""
        past = self.self_kv[i]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, nh, t, hs)
        self.self_kv[i] = (k, v)
        return k, v

    def reorder(self, beam_idx: Tensor) -> KVCache:
        """New cache whose row b is this cache's row beam_idx[b] (beam search after choosing hypotheses)."""
        def pick(kv: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor] | None:
            return None if kv is None else (kv[0].index_select(0, beam_idx), kv[1].index_select(0, beam_idx))

        mask = self.memory_key_padding_mask
        return KVCache(cross_kv=[pick(kv) for kv in self.cross_kv],
                       memory_key_padding_mask=None if mask is None else mask.index_select(0, beam_idx),
                       self_kv=[pick(kv) for kv in self.self_kv])
