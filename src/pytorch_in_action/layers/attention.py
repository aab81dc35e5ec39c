"""Scaled dot-product attention, multi-head attention and mask builders, written from scratch.

Twins of `F.scaled_dot_product_attention` and `nn.MultiheadAttention` (same arguments, same state_dict keys),
tested equal to them in tests/layers/test_attention.py.

Two mask conventions exist in torch and both are kept here, because each twin follows its reference:
- `scaled_dot_product_attention` (like `F.scaled_dot_product_attention`): a bool `attn_mask` is True where a
  query MAY attend to a key; a float mask is added to the scores.
- `MultiheadAttention` (like `nn.MultiheadAttention`): bool `attn_mask` / `key_padding_mask` are True where
  attention is BLOCKED; float masks are added. `causal_mask` and `padding_mask` build masks in this convention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MultiheadAttention",
    "attention",
    "causal_mask",
    "padding_mask",
    "scaled_dot_product_attention",
]


# ----------------------------------------------------------------------------------------------- masks


def causal_mask(T: int, S: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """Bool (T, S) mask, True above the diagonal: query t may not see keys after t (nn.MultiheadAttention style).

    Same positions as `nn.Transformer.generate_square_subsequent_mask(T)` marks with -inf.
    """
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).triu(diagonal=1)


def padding_mask(lengths: Tensor | list[int], T: int | None = None) -> Tensor:
    """Bool (B, T) key padding mask, True at padding positions (index >= length), as `key_padding_mask` expects."""
    lengths = torch.as_tensor(lengths)
    T = int(lengths.max()) if T is None else T
    return torch.arange(T, device=lengths.device)[None, :] >= lengths[:, None]  # (B, T)


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim that returns 0 (not NaN) for rows whose scores are all -inf, as torch's SDPA."""
    weights = torch.softmax(scores, dim=-1)
    fully_masked = scores.isneginf().all(dim=-1, keepdim=True)
    return weights.masked_fill(fully_masked, 0.0)


# ------------------------------------------------------------------------------------------ attention


def attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: float | None = None) -> tuple[Tensor, Tensor]:
    """softmax(Q Kᵀ · scale + mask) V; returns (output (..., L, Ev), weights (..., L, S)) with weights after dropout.

    query (..., L, E), key (..., S, E), value (..., S, Ev). Masks follow F.scaled_dot_product_attention: bool True
    = may attend, float = added to the scores. `is_causal` keeps the top-left lower triangle (key j <= query i).
    """
    L, S = query.size(-2), key.size(-2)
    scale = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
    scores = (query * scale) @ key.transpose(-2, -1)  # (..., L, S)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("pass either attn_mask or is_causal=True, not both")
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=query.device).tril()
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1) if attn_mask is None else _safe_softmax(scores)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    return weights @ value, weights  # (..., L, Ev), (..., L, S)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """From-scratch `F.scaled_dot_product_attention`: same arguments, same mask convention, same output."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)[0]


# --------------------------------------------------------------------------------- multi-head attention


def _additive(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """nn.MultiheadAttention mask (bool True = blocked, or float) -> float mask added to the scores."""
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))


class MultiheadAttention(nn.Module):
    """From-scratch `nn.MultiheadAttention`: same constructor, parameter names, forward and outputs.

    Q, K, V are projected (one packed `in_proj_weight` when kdim == vdim == embed_dim, else `q_proj_weight`,
    `k_proj_weight`, `v_proj_weight`), split into `num_heads` heads of size `head_dim`, attended per head and
    projected back by `out_proj`. When weights are not needed and `self.fused` is True, the per-head attention
    runs in torch's fused kernel (`F.scaled_dot_product_attention`); otherwise in `attention` above.
    One deliberate difference: rows whose keys are all masked give 0 (as torch's SDPA), not NaN.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be a positive multiple of num_heads ({num_heads})")
        kw = {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first, self.add_zero_attn = dropout, batch_first, add_zero_attn
        self.fused = True  # use F.scaled_dot_product_attention when the weights are not returned
        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **kw))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = nn.Parameter(torch.empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = nn.Parameter(torch.empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, embed_dim, **kw))
            self.bias_v = nn.Parameter(torch.empty(1, 1, embed_dim, **kw))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Same initialisation as torch: Xavier-uniform projections, zero biases, Xavier-normal bias_k/bias_v."""
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if w is not None:
                nn.init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)
        for b in (self.bias_k, self.bias_v):
            if b is not None:
                nn.init.xavier_normal_(b)

    # -- pieces, all batch-first: (B, T, E) in, (B, nh, T, hs) out ------------------------------------------------

    def _weight(self, i: int) -> tuple[Tensor, Tensor | None]:
        """(weight, bias) of projection i (0 = query, 1 = key, 2 = value)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight[i * E:(i + 1) * E]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * E:(i + 1) * E]
        return w, b

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, E) -> (B, nh, T, hs)."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    def project(self, x: Tensor, i: int) -> Tensor:
        """Project a batch-first input with projection i (0 = query, 1 = key, 2 = value) and split heads."""
        return self.split_heads(F.linear(x, *self._weight(i)))  # (B, nh, T, hs)

    def project_qkv(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q, K, V each (B, nh, T, hs); self-attention runs one packed GEMM instead of three."""
        if self._qkv_same_embed_dim and query is key and key is value:
            B, T, E = query.shape
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)  # (B, T, 3E)
            qkv = qkv.view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
            return qkv[0], qkv[1], qkv[2]
        return self.project(query, 0), self.project(key, 1), self.project(value, 2)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, need_weights: bool = False,
               is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attention over projected heads and the output projection.

        q (B, nh, L, hs), k/v (B, nh, S, hs), `mask` a float mask added to the scores, broadcastable to
        (B, nh, L, S). Returns (output (B, L, E), weights (B, nh, L, S) or None).
        """
        dropout_p = self.dropout if self.training else 0.0
        if self.fused and not need_weights:
            out, weights = F.scaled_dot_product_attention(q, k, v, mask, dropout_p, is_causal), None
        else:
            out, weights = attention(q, k, v, mask, dropout_p, is_causal)
        B, _, L, _ = out.shape
        out = out.transpose(1, 2).reshape(B, L, self.embed_dim)  # (B, L, E)
        return self.out_proj(out), (weights if need_weights else None)

    # -- the nn.MultiheadAttention interface ------------------------------------------------------------------------

    def _batch_first_view(self, x: Tensor, batched: bool) -> Tensor:
        """(T, B, E), (B, T, E) with batch_first, or unbatched (T, E) -> (B, T, E), a view."""
        if not batched:
            return x.unsqueeze(0)
        return x if self.batch_first else x.transpose(0, 1)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Same inputs and outputs as `nn.MultiheadAttention.forward`.

        query (L, B, E) / (B, L, E) with batch_first / (L, E) unbatched; key (S, B, kdim), value (S, B, vdim).
        attn_mask (L, S) or (B*nh, L, S), key_padding_mask (B, S): bool True = blocked, or float added.
        `is_causal` without `attn_mask` applies a causal mask (torch requires the mask as well).
        Returns (output like query, weights (B, L, S) averaged over heads or (B, nh, L, S), or None).
        """
        batched = query.dim() == 3
        if not batched:
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        # batch-first (B, T, E) from here on; keep `key is query` so self-attention uses one packed GEMM
        q_in = self._batch_first_view(query, batched)
        k_in = q_in if key is query else self._batch_first_view(key, batched)
        v_in = k_in if value is key else self._batch_first_view(value, batched)
        B, L, _ = q_in.shape
        S = k_in.size(1)
        q, k, v = self.project_qkv(q_in, k_in, v_in)  # (B, nh, L|S, hs)

        mask = _additive(attn_mask, q.dtype)
        if mask is not None:
            mask = mask.view(1, 1, L, S) if mask.dim() == 2 else mask.view(B, self.num_heads, L, S)
        elif is_causal and (key_padding_mask is not None or need_weights or not self.fused
                            or self.bias_k is not None or self.add_zero_attn):
            mask = _additive(causal_mask(L, S, device=q.device), q.dtype).view(1, 1, L, S)
        use_causal_kernel = is_causal and mask is None
        if self.bias_k is not None:  # one learned key/value appended to every sequence
            k = torch.cat([k, self.split_heads(self.bias_k.expand(B, 1, -1))], dim=2)
            v = torch.cat([v, self.split_heads(self.bias_v.expand(B, 1, -1))], dim=2)
            mask, key_padding_mask = (None if m is None else F.pad(m, (0, 1)) for m in (mask, key_padding_mask))
        if self.add_zero_attn:  # one all-zero key/value appended after the projection
            k = torch.cat([k, k.new_zeros(B, self.num_heads, 1, self.head_dim)], dim=2)
            v = torch.cat([v, v.new_zeros(B, self.num_heads, 1, self.head_dim)], dim=2)
            mask, key_padding_mask = (None if m is None else F.pad(m, (0, 1)) for m in (mask, key_padding_mask))
        if key_padding_mask is not None:
            kpm = _additive(key_padding_mask, q.dtype).view(B, 1, 1, -1)  # (B, 1, 1, S)
            mask = kpm if mask is None else mask + kpm

        out, weights = self.attend(q, k, v, mask, need_weights, use_causal_kernel)  # (B, L, E)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)  # (B, L, S)
        if not batched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        return (out if self.batch_first else out.transpose(0, 1)), weights
