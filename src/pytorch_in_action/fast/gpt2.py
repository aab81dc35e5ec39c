"""A faster GPT-2 decoder for the CPU: the model's own `generate`, with its one-token step replaced.

`GPT2LMHeadModel.generate` runs the model's modules, the code the book explains. After the prompt, one decoding
step at a small batch reads every weight once and does little arithmetic, so on a CPU its time goes into
streaming the weights and into the module calls and bookkeeping around the ~12 real operations of a layer.
`GPT2Decoder` keeps the model's prefill, cache and decoding loop and replaces only the one-token step:

* every batch: `flat_step`, the layer's real operations written out flat and run eagerly, its products through
  `fast.linear` (packed weights, the fastest kernel measured on this CPU);
* `native=True` (default), batch 1, float32 on the CPU: one call per token into a C++ kernel built for this CPU
  on first use (`fast.gpt2_native`) instead. It streams the weights about as fast as a plain read of their bytes,
  at the price of a packed copy of them (~500 MB for the 124M model, made on the first call and again after a
  weight changes), and it needs a C++ compiler. `native=False` needs none.

`torch.compile` of `flat_step` was tried for batches and left out: at batch 8 it decoded slower than the eager
step over packed products (docs/benchmarks.md).

Every path gives the tokens of the model's own `generate` (tests/fast/test_gpt2_fast.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action import generation
from pytorch_in_action.fast import gpt2_native
from pytorch_in_action.fast.linear import PackedLinears
from pytorch_in_action.models.gpt2 import GPT2LMHeadModel, KVCache

LinearFn = Callable[[nn.Linear, Tensor], Tensor]  # computes module(x): `plain_linear` or a `PackedLinears`


def plain_linear(module: nn.Linear, x: Tensor) -> Tensor:
    """`module(x)` as one `F.linear`."""
    return F.linear(x, module.weight, module.bias)


def flat_step(model: GPT2LMHeadModel, new_tokens: Tensor, position_ids: Tensor, past: int,
              attn_mask: Tensor | None, layers: list[tuple[Tensor, Tensor]], linear: LinearFn = plain_linear) -> Tensor:
    """The blocks' math for one new token per row (B, 1), written out flat: logits (B, V).

    A layer here is its real operations and little else (no module calls). `layers` holds each layer's key and
    value buffers (B, nh, S, hs) over the slots written so far and this one; this token's go to slot `past`.
    `attn_mask` (B, 1, 1, S), or None when no slot is hidden, hides the padding of left-padded rows.
    `linear(module, x)` computes each product (`plain_linear`, or a `PackedLinears`).
    """
    t, cfg = model.transformer, model.config
    B, C = new_tokens.size(0), cfg.n_embd
    nh, hs = cfg.n_head, C // cfg.n_head
    x = t.wte(new_tokens) + t.wpe(position_ids)[:, None]  # (B, 1, C)
    for (k_buf, v_buf), block in zip(layers, t.h):
        attn, mlp = block.attn, block.mlp
        h = F.layer_norm(x, (C,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
        qkv = linear(attn.c_attn, h).view(B, 3, nh, 1, hs)  # T = 1: q, k, v of each head
        k_buf[:, :, past:past + 1] = qkv[:, 1]  # (B, nh, 1, hs) into slot `past`
        v_buf[:, :, past:past + 1] = qkv[:, 2]
        y = F.scaled_dot_product_attention(qkv[:, 0], k_buf, v_buf, attn_mask=attn_mask, scale=attn.scale)
        x = x + linear(attn.c_proj, y.reshape(B, 1, C))  # (B, nh, 1, hs): one query, heads already side by side
        h = F.layer_norm(x, (C,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
        x = x + linear(mlp.c_proj, mlp.act(linear(mlp.c_fc, h)))
    x = F.layer_norm(x[:, 0], (C,), t.ln_f.weight, t.ln_f.bias, t.ln_f.eps)  # (B, C)
    return linear(model.lm_head, x)


def weights_stamp(model: nn.Module) -> tuple:
    """Where every parameter lives and how often it was changed in place: differs once any weight changed."""
    return tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in model.parameters())


class _Run:
    """What one `generate` call keeps besides the model's cache: the native step's view of the cache."""

    def __init__(self, native_ok: bool) -> None:
        self.native_ok = native_ok  # batch 1 may decode through the native step
        self.bound: gpt2_native.BoundCache | None = None  # the cache's buffers, bound for the native step
        self.weights_checked = False  # the native step's packed weights were checked against the model's


class GPT2Decoder:
    """`generate` of a `GPT2LMHeadModel` with a faster one-token step (see the module docstring)."""

    def __init__(self, model: GPT2LMHeadModel, native: bool = True) -> None:
        self.model, self.native = model, native
        self.linears = PackedLinears(model)
        self._native: gpt2_native.NativeDecodeStep | None = None
        self._native_stamp: tuple | None = None

    def release(self) -> None:
        """Free the packed copies of the weights; each is rebuilt when next needed."""
        self._native = self._native_stamp = None
        self.linears.release()

    @torch.inference_mode()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None = None, max_new_tokens: int = 20,
                 use_cache: bool = True, **options) -> Tensor:
        """`model.generate(input_ids, attention_mask, max_new_tokens, ..., **options)`, the same tokens, faster.

        `options` are those of `GPT2LMHeadModel.generate` (do_sample, num_beams, temperature, top_k, top_p,
        eos_token_id, pad_token_id, length_penalty, early_stopping, generator). `use_cache=False` is the model's
        own uncached reference path.
        """
        model = self.model
        if not use_cache:
            return model.generate(input_ids, attention_mask, max_new_tokens, use_cache=False, **options)
        cache = model.start_decoding(input_ids, attention_mask, max_new_tokens)
        run = _Run(self.native and gpt2_native.supports(model, 1))

        def step(new_tokens: Tensor, cache: KVCache) -> tuple[Tensor, KVCache]:
            if new_tokens.size(1) > 1 or cache.length == 0 or model.training:
                return model.decode_step(new_tokens, cache)  # the prefill runs the model's own blocks
            return self._next_token_logits(new_tokens, cache, run), cache

        def reorder(cache: KVCache, index: Tensor) -> KVCache:
            run.bound = None  # bound to the old buffers
            return cache.reorder(index)

        return generation.generate(step, input_ids, cache, max_new_tokens=max_new_tokens, reorder_cache=reorder,
                                   **options)

    def _next_token_logits(self, new_tokens: Tensor, cache: KVCache, run: _Run) -> Tensor:
        """One new token per row (B, 1) after the cached ones: logits (B, V), cache advanced."""
        if new_tokens.size(0) == 1 and run.native_ok:  # one native call
            step = self._native_step(check_weights=not run.weights_checked)
            run.weights_checked = True  # once per generate() call: the check costs ~1 µs per parameter
            if run.bound is None:
                run.bound = step.bind(cache.k, cache.v, None if cache.mask is None else cache.mask[0])
            logits = step(run.bound, int(new_tokens), int(cache.next_pos), cache.length)
        else:  # attend over the slots written so far and this one; only left padding needs a mask
            S = cache.length + 1
            layers = [(k[:, :, :S], v[:, :, :S]) for k, v in zip(cache.k, cache.v)]
            mask = None if cache.mask is None else cache.mask[:, None, None, :S]  # (B, 1, 1, S)
            logits = flat_step(self.model, new_tokens, cache.next_pos, cache.length, mask, layers, self.linears)
        cache.length += 1
        cache.next_pos = cache.next_pos + 1
        return logits

    def _native_step(self, check_weights: bool = True) -> gpt2_native.NativeDecodeStep:
        """The native batch-1 step. Its packed weights are a copy: rebuilt when any parameter has changed since
        packing, or the thread count has (`check_weights`: looked at once per generate() call, not per token)."""
        if check_weights or self._native is None:
            stamp = (weights_stamp(self.model), torch.get_num_threads())
            if self._native_stamp != stamp:
                self._native = None  # the old packed copy goes before the new one is made
                self._native, self._native_stamp = gpt2_native.NativeDecodeStep(self.model), stamp
        return self._native
