"""GPT-2's one-token step at batch 1 as one native call: the fastest way this library decodes on a CPU.

At batch 1 every new token reads all the weights once, so decoding runs at the speed weights stream from memory.
`fast/native/gpt2_decode.cpp` keeps that stream unbroken: the weights are packed once, in reading order, into one
contiguous stream per thread, and the whole step (embeddings, layer norms, attention over the KV cache, GELU,
residuals, head) runs in one parallel region with a barrier wherever one result feeds the next. This module
packs the weights and calls the kernel; `fast.gpt2.GPT2Decoder` uses it at batch 1 for float32 CPU models. The
packed stream is a second copy of the weights (~500 MB for the 124M model), rebuilt when a
weight or the thread count changes.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor, nn

from pytorch_in_action.fast import native

NR = 32  # output columns per packed block: `NR` in gpt2_decode.cpp
ACTIVATIONS = {"gelu_new": 0, "gelu_pytorch_tanh": 0, "gelu": 1, "relu": 2, "silu": 3, "swish": 3}
# ^ HF activation name -> the kernel's code for the same formula ("tanh", which GPT2LMHeadModel also takes, is
#   not one: such a model decodes through the torch step of `fast.gpt2`)

_ptr = ctypes.c_void_p


class _Model(ctypes.Structure):
    """The C struct `Model` of gpt2_decode.cpp, field for field."""

    _fields_ = [*((n, ctypes.c_int64) for n in ("n_layer", "n_embd", "n_head", "n_inner", "vocab", "n_threads",
                                                "activation")),
                ("eps", ctypes.c_double), ("wte", _ptr), ("wpe", _ptr), ("stream", _ptr), ("params", _ptr),
                ("ln_f_weight", _ptr), ("ln_f_bias", _ptr), ("head_bias", _ptr), ("scale", _ptr)]


def supports(model: nn.Module, batch: int) -> bool:
    """True when the native step can decode for `model` (a GPT2LMHeadModel) at this batch size."""
    params = list(model.parameters())
    return (batch == 1 and model.config.activation_function in ACTIVATIONS
            and all(p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() for p in params))


def blocks(weight: Tensor) -> Tensor:
    """`weight` (N, K) as the kernel reads it: (ceil(N / NR), K, NR), block b = weight[b*NR:(b+1)*NR].T, rows
    past N zero."""
    N, K = weight.shape
    nb = -(-N // NR)
    padded = weight.new_zeros(nb * NR, K)
    padded[:N] = weight
    return padded.view(nb, NR, K).transpose(1, 2)  # (nb, K, NR)


class NativeDecodeStep:
    """The packed weights of one GPT2LMHeadModel and the call into the kernel for one token at batch 1."""

    def __init__(self, model: nn.Module) -> None:
        self.lib = native.load("gpt2_decode")
        self.lib.pia_gpt2_stream_length.restype = ctypes.c_int64
        self.lib.pia_gpt2_decode_step.restype = ctypes.c_int
        cfg, t = model.config, model.transformer
        self.n_threads = torch.get_num_threads()
        self.n_layer, self.n_embd = cfg.n_layer, cfg.n_embd
        layers = [(b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj) for b in t.h]
        inner, vocab = layers[0][2].out_features, model.lm_head.out_features
        small = [p for b, (qkv, proj, fc, mlp_proj) in zip(t.h, layers)
                 for p in (b.ln_1.weight, b.ln_1.bias, qkv.bias, proj.bias, b.ln_2.weight, b.ln_2.bias, fc.bias,
                           mlp_proj.bias)]
        self.params = (_ptr * len(small))(*[None if p is None else p.data_ptr() for p in small])
        self.scale = (ctypes.c_double * cfg.n_layer)(*[b.attn.scale for b in t.h])
        self.model = model  # the pointers above point into its tensors
        self.struct = _Model(cfg.n_layer, cfg.n_embd, cfg.n_head, inner, vocab, self.n_threads,
                             ACTIVATIONS[cfg.activation_function], t.ln_f.eps, t.wte.weight.data_ptr(),
                             t.wpe.weight.data_ptr(), None, ctypes.cast(self.params, _ptr), t.ln_f.weight.data_ptr(),
                             t.ln_f.bias.data_ptr(), None if model.lm_head.bias is None
                             else model.lm_head.bias.data_ptr(), ctypes.cast(self.scale, _ptr))
        self.stream = self._pack([m.weight for ms in layers for m in ms] + [model.lm_head.weight])
        self.struct.stream = self.stream.data_ptr()
        self.vocab, self.n_head, self.n_positions = vocab, cfg.n_head, cfg.n_positions

    def _pack(self, weights: list[Tensor]) -> Tensor:
        """Every thread's blocks of every weight, thread after thread, each thread's in reading order."""
        T = self.n_threads
        lengths = [self.lib.pia_gpt2_stream_length(ctypes.byref(self.struct), t) for t in range(T)]
        stream = torch.empty(sum(lengths))
        cursor = [sum(lengths[:t]) for t in range(T)]
        with torch.no_grad():
            for w in weights:
                packed = blocks(w.detach())  # (nb, K, NR)
                for t in range(T):
                    part = packed[t * len(packed) // T:(t + 1) * len(packed) // T].reshape(-1)
                    stream[cursor[t]:cursor[t] + part.numel()] = part
                    cursor[t] += part.numel()
        if cursor != [sum(lengths[:t + 1]) for t in range(T)]:
            raise RuntimeError("packed stream lengths disagree with the kernel's")  # a bug, not bad input
        return stream

    def bind(self, keys: list[Tensor], values: list[Tensor], mask: Tensor | None = None) -> BoundCache:
        """A KV cache for `__call__`: each layer's key and value buffer (1, n_head, max_len, head_dim), and the
        slots attention may read (`mask` (max_len,) bool, None for all). Checked here once, not on every token:
        the kernel itself trusts what it is given."""
        head_dim = self.n_embd // self.n_head
        max_len = keys[0].size(-2) if keys else 0
        if len(keys) != self.n_layer or len(values) != self.n_layer or any(
                b.shape != (1, self.n_head, max_len, head_dim) or b.dtype != torch.float32
                or b.device.type != "cpu" or not b.is_contiguous() for b in (*keys, *values)):
            raise ValueError(f"keys and values: {self.n_layer} contiguous float32 CPU buffers each, shaped "
                             f"(1, {self.n_head}, max_len, {head_dim})")
        if mask is not None and (mask.shape != (max_len,) or mask.dtype != torch.bool or not mask.is_contiguous()):
            raise ValueError(f"mask: a contiguous bool tensor of shape ({max_len},)")
        return BoundCache(keys, values, mask)

    def __call__(self, cache: BoundCache, token: int, position: int, past: int,
                 products_only: bool = False) -> Tensor:
        """Logits (1, V) of `token` at `position`; its key and value go to slot `past` of each layer's cache and
        attention reads slots [0, past] (those the cache's mask allows). `products_only` runs the matrix
        products alone, on scratch inputs, leaving the cache untouched (for benchmarks)."""
        if torch.get_num_threads() != self.n_threads:
            raise RuntimeError("the thread count changed since packing: build a new NativeDecodeStep")
        if not (0 <= token < self.vocab and 0 <= position < self.n_positions and 0 <= past < cache.max_len):
            raise ValueError(f"token {token}, position {position} or slot {past} out of range")
        logits = torch.empty(1, self.vocab)
        rc = self.lib.pia_gpt2_decode_step(
            ctypes.byref(self.struct), cache.k, cache.v, ctypes.c_int64(cache.max_len), ctypes.c_int64(token),
            ctypes.c_int64(position), ctypes.c_int64(past), cache.mask, _ptr(logits.data_ptr()),
            ctypes.c_int(products_only))
        if rc != 0:
            why = "OpenMP gave fewer threads than the weights were packed for" if rc == -1 else "out of memory"
            raise RuntimeError(f"native GPT-2 step failed: {why}")
        return logits


class BoundCache:
    """Raw pointers to a checked KV cache (see `NativeDecodeStep.bind`); holds the tensors they point into."""

    def __init__(self, keys: list[Tensor], values: list[Tensor], mask: Tensor | None) -> None:
        self.tensors = (keys, values, mask)
        self.max_len = keys[0].size(2)
        self.k = (_ptr * len(keys))(*[b.data_ptr() for b in keys])
        self.v = (_ptr * len(values))(*[b.data_ptr() for b in values])
        self.mask = None if mask is None else _ptr(mask.data_ptr())
