"""A faster T5 decoder for the CPU: the model's own `generate`, with its one-token step written out flat.

`T5ForConditionalGeneration.generate` runs the decoder's modules. Decoding a token streams every decoder weight
once; at batch 1 the module calls, view bookkeeping and separate key/value writes around the real operations are
a visible part of the step. `T5Decoder` keeps the model's encoder pass, cache
and decoding loop and replaces the one-token step with `flat_step`: each layer is its products (the query, key
and value projections fused into one), two fused attentions, three RMSNorms and the residual adds, every product
through `fast.linear` (the fastest packed kernel, measured). It gives the tokens of the model's own `generate`
(tests/fast/test_t5_fast.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action import generation
from pytorch_in_action.fast.linear import PackedLinears, PackedWeight
from pytorch_in_action.models.t5 import T5Cache, T5ForConditionalGeneration


class FusedQKV:
    """One decoder layer's query, key and value weights stacked (3 * inner, d_model): one product per step."""

    def __init__(self, attention: nn.Module) -> None:
        self.weight = torch.cat([attention.q.weight, attention.k.weight, attention.v.weight])
        self.packed = PackedWeight(frozen=True)  # this copy is never changed in place

    def __call__(self, x: Tensor) -> Tensor:
        return self.packed.linear(x, self.weight)


def flat_step(model: T5ForConditionalGeneration, new_tokens: Tensor, cache: T5Cache, qkv: list[FusedQKV],
              linear: PackedLinears) -> Tensor:
    """One new token per row (B, 1), float32/64: the decoder blocks' math written out flat; logits (B, V)."""
    B, past = new_tokens.size(0), cache.length
    x = model.shared(new_tokens)  # (B, 1, d_model)
    bias = cache.self_bias[:, :, past:past + 1, :past + 1]  # (1, nh, 1, S): position bias, causal by construction
    kv_all = cache.kv[..., :past + 1, :]  # (L, 2, B, nh, S, d_kv) keys and values up to this token
    kv_new = cache.kv[..., past, :]  # (L, 2, B, nh, d_kv) this token's slot
    d = (x.size(-1),)
    for i, block in enumerate(model.decoder.block):
        sa, ca, ff = block.layer
        att = sa.SelfAttention
        h = F.rms_norm(x, d, sa.layer_norm.weight, sa.layer_norm.variance_epsilon)
        q_k_v = qkv[i](h).view(B, 3, att.n_heads, att.d_kv)  # T = 1
        kv_new[i].copy_(q_k_v[:, 1:].transpose(0, 1))  # (2, B, nh, d_kv)
        k, v = kv_all[i]
        y = F.scaled_dot_product_attention(q_k_v[:, 0, :, None], k, v, attn_mask=bias, scale=1.0)  # (B, nh, 1, d_kv)
        x = x + linear(att.o, y.reshape(B, 1, -1))  # one query: the heads are already side by side

        att = ca.EncDecAttention
        h = F.rms_norm(x, d, ca.layer_norm.weight, ca.layer_norm.variance_epsilon)
        q = linear(att.q, h).view(B, att.n_heads, 1, att.d_kv)
        y = F.scaled_dot_product_attention(q, cache.cross_k[i], cache.cross_v[i], attn_mask=cache.cross_bias,
                                           scale=1.0)
        x = x + linear(att.o, y.reshape(B, 1, -1))

        dense = ff.DenseReluDense
        h = F.rms_norm(x, d, ff.layer_norm.weight, ff.layer_norm.variance_epsilon)
        if hasattr(dense, "wi_0"):  # gated (T5 v1.1)
            inner = dense.act(linear(dense.wi_0, h)) * linear(dense.wi_1, h)
        else:
            inner = dense.act(linear(dense.wi, h))
        x = x + linear(dense.wo, inner)
    cache.length += 1
    ln = model.decoder.final_layer_norm
    h = F.rms_norm(x[:, 0], d, ln.weight, ln.variance_epsilon)
    if model.config.tie_word_embeddings:  # as `T5ForConditionalGeneration.logits`
        h = h * model.config.d_model**-0.5
    return linear(model.lm_head, h)


class T5Decoder:
    """`generate` of a `T5ForConditionalGeneration` with the flat one-token step (see the module docstring)."""

    def __init__(self, model: T5ForConditionalGeneration) -> None:
        self.model = model
        self.linears = PackedLinears(model)

    def release(self) -> None:
        """Free the packed copies of the weights (rebuilt when next needed)."""
        self.linears.release()

    @torch.inference_mode()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None = None, max_new_tokens: int = 20,
                 use_cache: bool = True, **options) -> Tensor:
        """`model.generate(input_ids, attention_mask, max_new_tokens, ..., **options)`, the same tokens, faster.

        `options` are those of `T5ForConditionalGeneration.generate`; `use_cache=False` is the model's own
        uncached reference path.
        """
        model = self.model
        if not use_cache:
            return model.generate(input_ids, attention_mask, max_new_tokens, use_cache=False, **options)
        cache, start = model.start_decoding(input_ids, attention_mask, max_new_tokens)
        qkv = [FusedQKV(block.layer[0].SelfAttention) for block in model.decoder.block]

        def step(new_tokens: Tensor, cache: T5Cache) -> tuple[Tensor, T5Cache]:
            if new_tokens.size(1) > 1 or model.training or cache.kv.dtype not in (torch.float32, torch.float64):
                return model.decode_step(new_tokens, cache)
            return flat_step(model, new_tokens, cache, qkv, self.linears), cache

        return generation.generate(step, start, cache, max_new_tokens=max_new_tokens, reorder_cache=T5Cache.reorder,
                                   **model.generation_options(options))
