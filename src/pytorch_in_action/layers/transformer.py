"""Transformer encoder/decoder layers, stacks and the full encoder-decoder, written from scratch.

Twins of `nn.TransformerEncoderLayer`, `nn.TransformerDecoderLayer`, `nn.TransformerEncoder`,
`nn.TransformerDecoder` and `nn.Transformer`: same constructor arguments, same state_dict keys (a torch model's
state_dict loads as is), same forward signatures and outputs. Beyond torch: incremental decoding with a KV cache
(`TransformerDecoder.forward_step`, see `KVCache`).

Post-LN (norm_first=False, the 2017 paper): x = norm(x + sublayer(x)).
Pre-LN (norm_first=True): x = x + sublayer(norm(x)); the residual path stays an identity, which trains deep
stacks more stably without warm-up tricks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from pytorch_in_action.layers.attention import MultiheadAttention, _additive, causal_mask
from pytorch_in_action.layers.feedforward import Activation, feed_forward, get_activation
from pytorch_in_action.layers.kv_cache import KVCache

__all__ = [
    "KVCache",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
]

Block = Callable[[Tensor], Tensor]


class TransformerEncoderLayer(nn.Module):
    """Self-attention then a position-wise FFN, each with a residual connection and LayerNorm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Activation = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = get_activation(activation)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(feed_forward(x, self.linear1, self.linear2, self.activation, self.dropout))

    def forward(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        """src (T, B, d) or (B, T, d) with batch_first; masks as `nn.MultiheadAttention` (bool True = blocked)."""
        def sa(x: Tensor) -> Tensor:
            out = self.self_attn(x, x, x, attn_mask=src_mask, key_padding_mask=src_key_padding_mask,
                                 need_weights=False, is_causal=is_causal)[0]
            return self.dropout1(out)

        x = src
        if self.norm_first:
            x = x + sa(self.norm1(x))
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + sa(x))
        return self.norm2(x + self._ff_block(x))


class TransformerDecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the encoder output (memory), then a position-wise FFN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Activation = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                                 **kw)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = get_activation(activation)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout3(feed_forward(x, self.linear1, self.linear2, self.activation, self.dropout))

    def _sublayers(self, x: Tensor, sa: Block, ca: Block) -> Tensor:
        """The residual wiring, shared by the full forward and the cached step; sa/ca include their dropout."""
        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + ca(self.norm2(x))
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + sa(x))
        x = self.norm2(x + ca(x))
        return self.norm3(x + self._ff_block(x))

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Tensor:
        """tgt (T, B, d), memory (S, B, d) (batch first with batch_first); masks as `nn.MultiheadAttention`."""
        def sa(x: Tensor) -> Tensor:
            return self.dropout1(self.self_attn(x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,
                                                need_weights=False, is_causal=tgt_is_causal)[0])

        def ca(x: Tensor) -> Tensor:
            return self.dropout2(self.multihead_attn(x, memory, memory, attn_mask=memory_mask,
                                                     key_padding_mask=memory_key_padding_mask, need_weights=False,
                                                     is_causal=memory_is_causal)[0])

        return self._sublayers(tgt, sa, ca)

    def forward_step(self, x: Tensor, cache: KVCache, i: int) -> Tensor:
        """New target positions x (B, t, d), batch-first, attending to the cache of layer i (which grows by t)."""
        def sa(h: Tensor) -> Tensor:
            q, k, v = self.self_attn.project_qkv(h, h, h)  # (B, nh, t, hs)
            k, v = cache.append(i, k, v)  # (B, nh, past + t, hs)
            t, T = q.size(2), k.size(2)
            # new position p (absolute T - t + p) sees keys up to itself: bottom-right aligned causal mask
            blocked = torch.ones(t, T, dtype=torch.bool, device=h.device).triu(T - t + 1)  # (t, T)
            mask = None if t == 1 else _additive(blocked, h.dtype)
            return self.dropout1(self.self_attn.attend(q, k, v, mask)[0])

        def ca(h: Tensor) -> Tensor:
            k, v = cache.cross_kv[i]  # (B, nh, S, hs), projected once
            kpm = cache.memory_key_padding_mask
            mask = None if kpm is None else _additive(kpm, h.dtype)[:, None, None, :]  # (B, 1, 1, S)
            return self.dropout2(self.multihead_attn.attend(self.multihead_attn.project(h, 0), k, v, mask)[0])

        return self._sublayers(x, sa, ca)


def _clones(layer: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(layer) for _ in range(n))


class TransformerEncoder(nn.Module):
    """A stack of `num_layers` copies of `encoder_layer`, then an optional final norm (pre-LN needs one).

    `enable_nested_tensor` and `mask_check` are accepted for torch compatibility; they only steer torch's fast path.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: nn.Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(nn.Module):
    """A stack of `num_layers` copies of `decoder_layer`, an optional final norm, and cached incremental decoding."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)

    def _batch_first(self) -> bool:
        return self.layers[0].self_attn.batch_first

    def init_cache(self, memory: Tensor, memory_key_padding_mask: Tensor | None = None) -> KVCache:
        """Project the memory once into every layer's cross-attention keys/values."""
        mem = memory if self._batch_first() else memory.transpose(0, 1)  # (B, S, d)
        cross_kv = [(layer.multihead_attn.project(mem, 1), layer.multihead_attn.project(mem, 2))
                    for layer in self.layers]  # each (B, nh, S, hs)
        return KVCache(cross_kv=cross_kv, memory_key_padding_mask=memory_key_padding_mask)

    def forward_step(self, tgt_new: Tensor, memory: Tensor | None, cache: KVCache | None = None,
                     memory_key_padding_mask: Tensor | None = None) -> tuple[Tensor, KVCache]:
        """Decode only the new target positions, reusing the cached keys/values of all earlier ones.

        tgt_new (t, B, d) or (B, t, d) with batch_first: the embedded new tokens (usually t = 1), positioned at
        `cache.seq_len`. Equal to the last t positions of `forward` with a causal `tgt_mask` over the whole
        prefix. `memory` is only read when `cache` is None (first step). Target padding is not supported here.
        Returns (output for the new positions, the updated cache).
        """
        if cache is None:
            if memory is None:
                raise ValueError("the first step needs the memory to build the cache")
            cache = self.init_cache(memory, memory_key_padding_mask)
        elif memory_key_padding_mask is not None:
            cache.memory_key_padding_mask = memory_key_padding_mask
        x = tgt_new if self._batch_first() else tgt_new.transpose(0, 1)  # (B, t, d)
        for i, layer in enumerate(self.layers):
            x = layer.forward_step(x, cache, i)
        if self.norm is not None:
            x = self.norm(x)
        return (x if self._batch_first() else x.transpose(0, 1)), cache


class Transformer(nn.Module):
    """The encoder-decoder of "Attention Is All You Need", argument for argument like `nn.Transformer`.

    Both stacks end with a LayerNorm, as in torch. Inputs are already embedded: (S, B, d) / (T, B, d), or
    batch first. `custom_encoder` / `custom_decoder` replace the stacks, as in torch.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation: Activation = "relu",
                 custom_encoder: nn.Module | None = None, custom_decoder: nn.Module | None = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        layer_kw = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                        activation=activation, layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                        norm_first=norm_first, bias=bias, **kw)
        if custom_encoder is None:
            custom_encoder = TransformerEncoder(TransformerEncoderLayer(**layer_kw), num_encoder_layers,
                                                nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        if custom_decoder is None:
            custom_decoder = TransformerDecoder(TransformerDecoderLayer(**layer_kw), num_decoder_layers,
                                                nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        self.encoder, self.decoder = custom_encoder, custom_decoder
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():  # torch's initialisation of nn.Transformer
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        """Encode src, decode tgt against it; output shaped like tgt. Masks as `nn.MultiheadAttention`."""
        b = 0 if self.batch_first else 1
        if src.dim() == 3 and src.size(b) != tgt.size(b):
            raise ValueError(f"src and tgt batch sizes differ: {src.size(b)} vs {tgt.size(b)}")
        memory = self.encode(src, src_mask, src_key_padding_mask, src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    def encode(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
               src_is_causal: bool | None = None) -> Tensor:
        """The memory the decoder attends to, (S, B, d) or batch first."""
        return self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)

    def decode_step(self, tgt_new: Tensor, memory: Tensor | None, cache: KVCache | None = None,
                    memory_key_padding_mask: Tensor | None = None) -> tuple[Tensor, KVCache]:
        """One cached decoding step: see `TransformerDecoder.forward_step`."""
        return self.decoder.forward_step(tgt_new, memory, cache, memory_key_padding_mask)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: torch.device | None = None,
                                        dtype: torch.dtype | None = None) -> Tensor:
        """Float (sz, sz) mask with -inf above the diagonal, as torch's; `causal_mask(sz)` is its bool twin."""
        return _additive(causal_mask(sz, device=device), dtype or torch.get_default_dtype())
