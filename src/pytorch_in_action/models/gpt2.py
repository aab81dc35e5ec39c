"""GPT-2 from scratch: a decoder-only pre-LN Transformer with learned absolute positions and a tied LM head.

Parameter names follow Hugging Face (`wte`, `wpe`, `h.{i}.ln_1`, `attn.c_attn`, `attn.c_proj`, `mlp.c_fc`,
`mlp.c_proj`, `ln_f`), so a `transformers` checkpoint loads through `convert_hf_state_dict`, whose only real
work is transposing HF's `Conv1D` weights (stored (in, out)) into `nn.Linear` layout (out, in).
`generate` runs these same modules over a preallocated KV cache through the shared `pytorch_in_action.generation`
loop: the code that decodes is the code above it. Faster decoding on a CPU (packed weights, a flat or native
one-token step) is an optimisation kept apart, in `pytorch_in_action.fast`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action import generation
from pytorch_in_action.layers.feedforward import hf_activation
from pytorch_in_action.models.pretrained import FromHF


@dataclass
class GPT2Config:
    """The fields of HF's `GPT2Config` this implementation uses (same names)."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width, 4 * n_embd when None
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256
    pad_token_id: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPT2Config:
        """Build from an HF config dict (config.json or `hf_config.to_dict()`), ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class CausalLMOutput:
    logits: Tensor  # (B, T, V)
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None  # (B, T, C)


class KVCache:
    """Preallocated keys/values for every layer, plus what decoding needs to know about padding and positions."""

    def __init__(self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        # one (B, nh, max_len, hs) buffer per layer, written in place as tokens arrive
        shape = (batch, n_head, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.length = 0  # positions filled so far
        self.mask: Tensor | None = None  # (B, max_len) bool, None when no row has padding
        self.next_pos: Tensor | None = None  # (B,) position id of the next token (left padding shifts it)
        self.seq: Tensor | None = None  # (B, length) tokens so far, kept only by the uncached reference path

    def reorder(self, index: Tensor) -> KVCache:
        """Rows follow `index` (beam search); works in place on new tensors."""
        self.k, self.v = [k[index] for k in self.k], [v[index] for v in self.v]
        if self.mask is not None:
            self.mask = self.mask[index]
        if self.next_pos is not None:
            self.next_pos = self.next_pos[index]
        if self.seq is not None:
            self.seq = self.seq[index]
        return self


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused QKV projection (`c_attn`)."""

    def __init__(self, cfg: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.resid_dropout = nn.Dropout(cfg.resid_pdrop)
        self.attn_pdrop = cfg.attn_pdrop
        self.scale = (self.head_dim**-0.5 if cfg.scale_attn_weights else 1.0)
        if cfg.scale_attn_by_inverse_layer_idx:
            self.scale /= layer_idx + 1
        self.layer_idx = layer_idx

    def forward(self, x: Tensor, bias: Tensor | None, cache: KVCache | None) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        causal = bias is None and T > 1
        if cache is not None:
            start = cache.length
            k_buf, v_buf = cache.k[self.layer_idx], cache.v[self.layer_idx]
            k_buf[:, :, start:start + T] = k
            v_buf[:, :, start:start + T] = v
            k, v = k_buf[:, :, :start + T], v_buf[:, :, :start + T]  # (B, nh, S, hs) all keys so far
            causal = causal and start == 0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=causal, scale=self.scale,
                                           dropout_p=self.attn_pdrop if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C) heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: expand 4x, GELU (tanh form), project back."""

    def __init__(self, cfg: GPT2Config) -> None:
        super().__init__()
        inner = cfg.n_inner or 4 * cfg.n_embd
        self.c_fc = nn.Linear(cfg.n_embd, inner)
        self.c_proj = nn.Linear(inner, cfg.n_embd)
        self.act = hf_activation(cfg.activation_function)
        self.dropout = nn.Dropout(cfg.resid_pdrop)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN residual block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, cfg: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = CausalSelfAttention(cfg, layer_idx)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, bias: Tensor | None, cache: KVCache | None) -> Tensor:
        x = x + self.attn(self.ln_1(x), bias, cache)
        return x + self.mlp(self.ln_2(x))


def attention_bias(attention_mask: Tensor, q_len: int, past: int, dtype: torch.dtype) -> Tensor:
    """Additive mask (B, 1, T, S): 0 where query i may see key j (j <= past + i and j is not padding), else the
    most negative float. A fully masked row (a padding query) becomes uniform instead of NaN, as in HF."""
    S = attention_mask.size(1)
    q_pos = torch.arange(past, past + q_len, device=attention_mask.device)[:, None]  # (T, 1)
    k_pos = torch.arange(S, device=attention_mask.device)[None, :]  # (1, S)
    allowed = (k_pos <= q_pos)[None, None] & attention_mask[:, None, None, :].bool()  # (B, 1, T, S)
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)


class GPT2Model(FromHF, nn.Module):
    """Token + position embeddings, `n_layer` pre-LN blocks, final LayerNorm: returns (B, T, n_embd)."""

    config_class = GPT2Config

    def __init__(self, cfg: GPT2Config) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.drop = nn.Dropout(cfg.embd_pdrop)
        self.h = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, position_ids: Tensor | None = None,
                cache: KVCache | None = None) -> Tensor:
        """`attention_mask` (B, past + T) covers the cached positions too; positions default to past..past+T-1."""
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=input_ids.device)[None]  # (1, T)
        x = self.drop(self.wte(input_ids) + self.wpe(position_ids))  # (B, T, C)
        bias = None
        if attention_mask is not None and not bool(attention_mask.all()):
            bias = attention_bias(attention_mask, T, past, x.dtype)
        for block in self.h:
            x = block(x, bias, cache)
        if cache is not None:
            cache.length += T
        return self.ln_f(x)

    @staticmethod
    def convert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        return convert_hf_state_dict(hf_state_dict, lm_head=False)


class GPT2LMHeadModel(FromHF, nn.Module):
    """GPT2Model + a linear head onto the vocabulary (tied to `wte` unless the config says otherwise)."""

    config_class = GPT2Config

    def __init__(self, cfg: GPT2Config) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, position_ids: Tensor | None = None,
                labels: Tensor | None = None, cache: KVCache | None = None) -> CausalLMOutput:
        """Logits for every position; with `labels` (B, T) also the next-token loss (-100 is ignored)."""
        h = self.transformer(input_ids, attention_mask, position_ids, cache)
        logits = self.lm_head(h)
        loss = None
        if labels is not None:  # position t predicts token t+1
            shifted = logits[:, :-1].flatten(0, 1)
            if shifted.dtype in (torch.float16, torch.bfloat16):
                shifted = shifted.float()  # the softmax of a large vocabulary needs float32
            loss = F.cross_entropy(shifted, labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(logits=logits, loss=loss, last_hidden_state=h)

    @torch.inference_mode()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None = None, max_new_tokens: int = 20,
                 use_cache: bool = True, **options) -> Tensor:
        """Continue `input_ids` (B, P), left-padded when `attention_mask` has zeros; returns (B, P + new).

        Every step runs the blocks above: the prompt once (the prefill), then one token per row against the
        cached keys and values. `options` are those of `generation.generate` (do_sample, num_beams, temperature,
        top_k, top_p, eos_token_id, pad_token_id, length_penalty, early_stopping, generator). `use_cache=False`
        recomputes the whole sequence every step (slow; it exists to check the cache). For faster CPU decoding
        with the same tokens see `pytorch_in_action.fast.cpu_decoder`.
        """
        cache = self.start_decoding(input_ids, attention_mask, max_new_tokens)
        step = self.decode_step if use_cache else self._step_uncached
        return generation.generate(step, input_ids, cache, max_new_tokens=max_new_tokens,
                                   reorder_cache=KVCache.reorder, **options)

    def start_decoding(self, input_ids: Tensor, attention_mask: Tensor | None, max_new_tokens: int) -> KVCache:
        """Check the prompts (B, P) and make the cache that `generate` fills: one place for every decoder."""
        generation.check_prompt(input_ids)
        P, n_positions = input_ids.size(1), self.config.n_positions
        if P + max_new_tokens > n_positions:
            raise ValueError(f"prompt + max_new_tokens = {P + max_new_tokens} exceeds n_positions {n_positions}")
        return self.new_cache(input_ids, attention_mask, P + max_new_tokens)

    def new_cache(self, input_ids: Tensor, attention_mask: Tensor | None, max_len: int) -> KVCache:
        """An empty KV cache for `max_len` positions of these prompts (B, P), remembering their left padding."""
        (B, P), cfg, w = input_ids.shape, self.config, self.lm_head.weight
        cache = KVCache(cfg.n_layer, B, cfg.n_head, max_len, cfg.n_embd // cfg.n_head, w.dtype, w.device)
        if attention_mask is not None and not bool(attention_mask.all()):
            cache.mask = torch.ones(B, max_len, dtype=torch.bool, device=input_ids.device)
            cache.mask[:, :P] = attention_mask.bool()
        return cache

    def decode_step(self, new_tokens: Tensor, cache: KVCache) -> tuple[Tensor, KVCache]:
        """Feed `new_tokens` (B, t) after the cached ones; logits of the last position (B, V)."""
        T, past = new_tokens.size(1), cache.length
        mask = cache.mask[:, :past + T] if cache.mask is not None else None
        if past == 0:  # prefill: positions count real tokens only, as HF does for left padding
            if mask is None:
                position_ids = None
                cache.next_pos = torch.full((new_tokens.size(0),), T, device=new_tokens.device)
            else:
                position_ids = (mask.long().cumsum(-1) - 1).masked_fill_(~mask, 1)  # (B, T) as HF; padding unused
                cache.next_pos = position_ids[:, -1] + 1
        else:
            position_ids = cache.next_pos[:, None]  # (B, 1)
            cache.next_pos = cache.next_pos + 1
        h = self.transformer(new_tokens, mask, position_ids, cache)
        return self.lm_head(h[:, -1]), cache

    def _step_uncached(self, new_tokens: Tensor, state: KVCache) -> tuple[Tensor, KVCache]:
        """Reference path: keep the whole sequence in `state.seq` and run the full model on it every step."""
        seq = new_tokens if state.length == 0 else torch.cat([state.seq, new_tokens], dim=1)
        state.seq, state.length = seq, seq.size(1)
        mask = state.mask[:, :seq.size(1)] if state.mask is not None else None
        position_ids = (mask.long().cumsum(-1) - 1).masked_fill_(~mask, 1) if mask is not None else None
        h = self.transformer(seq, mask, position_ids)
        return self.lm_head(h[:, -1]), state

    @staticmethod
    def convert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        return convert_hf_state_dict(hf_state_dict)


_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def convert_hf_state_dict(sd: dict[str, Tensor], lm_head: bool = True) -> dict[str, Tensor]:
    """HF GPT-2 names -> ours: transpose the Conv1D weights and drop the old causal-mask buffers.

    Accepts GPT2Model or GPT2LMHeadModel checkpoints (with or without the `transformer.` prefix) and returns
    names for our GPT2LMHeadModel (`lm_head.weight` taken from `wte` when the checkpoint omits the tied copy),
    or for GPT2Model when `lm_head` is False.
    """
    out = {}
    for name, t in sd.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # precomputed causal masks in old checkpoints, not parameters
        name = name.removeprefix("transformer.")
        out[name] = t.t() if name.endswith(_CONV1D) else t  # Conv1D (in, out) -> Linear (out, in)
    head = out.pop("lm_head.weight", None)
    if not lm_head:
        return out
    out = {f"transformer.{k}": v for k, v in out.items()}
    out["lm_head.weight"] = head if head is not None else out["transformer.wte.weight"]
    return out


def init_weights(model: nn.Module, n_layer: int, std: float = 0.02) -> None:
    """GPT-2's initialisation: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2 * n_layer)."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif "ln_" in name:
            nn.init.ones_(p)
        else:
            nn.init.normal_(p, 0.0, std / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else std)
