"""Token embedding scaled by sqrt(d_model) and the sinusoidal positional encoding of "Attention Is All You Need"."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["PositionalEncoding", "TokenEmbedding", "sinusoidal_table"]


class TokenEmbedding(nn.Module):
    """Token ids -> vectors times sqrt(d_model), so they keep a scale comparable to the positional encoding.

    The table starts as N(0, 1/d_model) (the paper's scale for a table shared with the output layer), so the scaled
    vectors have unit variance; nn.Embedding's N(0, 1) times sqrt(d_model) would drown the positions.
    """

    def __init__(self, num_embeddings: int, d_model: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(num_embeddings, d_model, padding_idx=padding_idx)
        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        if padding_idx is not None:
            with torch.no_grad():
                self.embedding.weight[padding_idx].zero_()

    def forward(self, tokens: Tensor) -> Tensor:
        return self.embedding(tokens) * math.sqrt(self.d_model)  # (..., d_model)


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    """(max_len, d_model) float64 table: PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (ceil(d/2),)
    angle = pos * inv_freq  # (max_len, ceil(d/2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal table to (T, B, d) or, with batch_first, (B, T, d) inputs, then dropout.

    `offset` is the position of the first row, so incremental decoding adds the right rows to new tokens.
    The table is a non-persistent buffer: it is rebuilt, never stored in checkpoints.
    """

    def __init__(self, d_model: int, dropout: float = 0.0, max_len: int = 5000, batch_first: bool = False) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        T = x.size(1 if self.batch_first else 0)
        if offset + T > self.pe.size(0):
            raise ValueError(f"positions up to {offset + T} exceed max_len={self.pe.size(0)}")
        pe = self.pe[offset:offset + T].to(x.dtype)  # (T, d)
        return self.dropout(x + (pe if self.batch_first else pe[:, None, :]))
