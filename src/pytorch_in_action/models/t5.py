"""T5 from scratch: an encoder-decoder Transformer with RMSNorm, relative position buckets and no attention scaling.

Parameter names are Hugging Face's (`shared`, `encoder.block.{i}.layer.0.SelfAttention.q`, `layer.1.DenseReluDense.wi`,
`decoder.block.{i}.layer.1.EncDecAttention`, `final_layer_norm`, `lm_head`), so a `transformers` checkpoint loads
almost as is (`convert_hf_state_dict` only fills in tied copies). Original T5 uses a ReLU feed-forward and a tied LM
head whose input is rescaled by d_model**-0.5; T5 v1.1 uses gated-GELU and an untied head without the rescale.
`generate` runs these modules over a preallocated cache; `pytorch_in_action.fast` holds a faster CPU decoder.
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
class T5Config:
    """The fields of HF's `T5Config` this implementation uses (same names)."""

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"  # "relu" (T5) or "gated-gelu" (T5 v1.1)
    tie_word_embeddings: bool = True
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0

    def __post_init__(self) -> None:
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> T5Config:
        """Build from an HF config dict, ignoring unknown keys. `transformers` 5 always ties the in-memory head
        and records the v1.1 layout as `scale_decoder_outputs=False`; both spellings map to `tie_word_embeddings`."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names and v is not None}
        if d.get("scale_decoder_outputs") is False:
            kwargs["tie_word_embeddings"] = False
        return cls(**kwargs)


@dataclass
class Seq2SeqOutput:
    last_hidden_state: Tensor | None = None  # decoder output (B, T, d_model)
    encoder_last_hidden_state: Tensor | None = None  # (B, S, d_model)
    logits: Tensor | None = None  # (B, T, V)
    loss: Tensor | None = None


class T5LayerNorm(nn.Module):
    """RMSNorm: scale by the root mean square, no mean subtraction and no bias (computed in float32)."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.variance_epsilon = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == self.weight.dtype and x.dtype in (torch.float32, torch.float64):  # the same math, one fused op
            return F.rms_norm(x, self.weight.shape, self.weight, self.variance_epsilon)
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))  # half precision is upcast, float64 kept
        variance = x32.pow(2).mean(-1, keepdim=True)
        return self.weight * (x32 * torch.rsqrt(variance + self.variance_epsilon)).to(self.weight.dtype)


def relative_position_bucket(relative_position: Tensor, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128) -> Tensor:
    """Map key_pos - query_pos to a bucket: exact buckets for small distances, logarithmic ones up to
    `max_distance`, then one shared bucket. Bidirectional (encoder) splits the buckets by sign; the causal
    decoder only sees the past, so it keeps all of them for negative offsets."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets  # keys to the right use the upper half
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # future keys (masked anyway) fall in bucket 0
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class T5Attention(nn.Module):
    """Multi-head attention without the 1/sqrt(d) scaling (T5 folds it into the initialisation)."""

    def __init__(self, cfg: T5Config, has_relative_attention_bias: bool, is_decoder: bool) -> None:
        super().__init__()
        self.n_heads, self.d_kv = cfg.num_heads, cfg.d_kv
        inner = cfg.num_heads * cfg.d_kv
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        self.dropout = cfg.dropout_rate
        self.is_decoder = is_decoder
        self.num_buckets, self.max_distance = cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def compute_bias(self, q_len: int, k_len: int, past: int = 0) -> Tensor:
        """Learned bias (1, n_heads, q_len, k_len) from the bucket of each (query, key) offset."""
        device = self.relative_attention_bias.weight.device
        rel = torch.arange(k_len, device=device)[None, :] - torch.arange(past, past + q_len, device=device)[:, None]
        bucket = relative_position_bucket(rel, not self.is_decoder, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(bucket).permute(2, 0, 1)[None]  # (q, k, nh) -> (1, nh, q, k)

    def split(self, x: Tensor) -> Tensor:
        return x.view(x.size(0), -1, self.n_heads, self.d_kv).transpose(1, 2)  # (B, nh, T, d_kv)

    def forward(self, x: Tensor, bias: Tensor, kv: tuple[Tensor, Tensor] | None = None,
                cache: tuple[Tensor, Tensor, int] | None = None) -> Tensor:
        """`bias` (position bias + additive mask) broadcasts to (B, nh, T, S); `kv` overrides keys/values
        (cross-attention over the encoder). `cache` = (key buffer, value buffer, past), each buffer
        (B, nh, max_len, d_kv): this call's keys/values go to slots past..past+T-1, attention reads 0..past+T-1."""
        q = self.split(self.q(x))  # (B, nh, T, d_kv)
        if kv is not None:
            return self.attend(q, *kv, bias)
        k, v = self.split(self.k(x)), self.split(self.v(x))  # (B, nh, T, d_kv)
        if cache is not None:
            k_buf, v_buf, past = cache
            end = past + x.size(1)
            k_buf[:, :, past:end], v_buf[:, :, past:end] = k, v
            k, v = k_buf[:, :, :end], v_buf[:, :, :end]  # (B, nh, S, d_kv) all keys so far
        return self.attend(q, k, v, bias)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        """softmax(q k^T + bias) v over heads (B, nh, T, d_kv), then the output projection: (B, T, d_model)."""
        if q.dtype in (torch.float32, torch.float64):  # softmax(q k^T + bias) v in one fused kernel
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:  # half precision: the softmax in float32, as Hugging Face does
            scores = q @ k.transpose(-1, -2) + bias  # (B, nh, T, S), no scaling
            probs = scores.softmax(dim=-1, dtype=torch.float32).type_as(scores)
            y = F.dropout(probs, self.dropout, self.training) @ v
        return self.o(y.transpose(1, 2).reshape(q.size(0), -1, self.n_heads * self.d_kv))  # (B, T, inner)


class T5LayerSelfAttention(nn.Module):
    def __init__(self, cfg: T5Config, has_relative_attention_bias: bool, is_decoder: bool) -> None:
        super().__init__()
        self.SelfAttention = T5Attention(cfg, has_relative_attention_bias, is_decoder)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.dropout = nn.Dropout(cfg.dropout_rate)


class T5LayerCrossAttention(nn.Module):
    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.EncDecAttention = T5Attention(cfg, False, True)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.dropout = nn.Dropout(cfg.dropout_rate)


class T5DenseActDense(nn.Module):
    """ReLU feed-forward of the original T5: wo(relu(wi(x)))."""

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.act = _activation(cfg.feed_forward_proj)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(self.dropout(self.act(self.wi(x))))


class T5DenseGatedActDense(nn.Module):
    """Gated feed-forward of T5 v1.1: wo(gelu_tanh(wi_0(x)) * wi_1(x))."""

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.act = _activation(cfg.feed_forward_proj)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(self.dropout(self.act(self.wi_0(x)) * self.wi_1(x)))


def _activation(feed_forward_proj: str):
    """"relu", "gated-gelu", ...: the name after "gated-"; T5's "gelu" is the tanh form (HF maps it to gelu_new)."""
    name = feed_forward_proj.split("-")[-1]
    return hf_activation("gelu_new" if name == "gelu" else name)


class T5LayerFF(nn.Module):
    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        gated = cfg.feed_forward_proj.startswith("gated-")
        self.DenseReluDense = T5DenseGatedActDense(cfg) if gated else T5DenseActDense(cfg)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))


class T5Block(nn.Module):
    """Pre-norm block: self-attention, (decoder only) cross-attention, feed-forward, each x + dropout(f(norm(x)))."""

    def __init__(self, cfg: T5Config, has_relative_attention_bias: bool, is_decoder: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [T5LayerSelfAttention(cfg, has_relative_attention_bias, is_decoder)]
        if is_decoder:
            layers.append(T5LayerCrossAttention(cfg))
        layers.append(T5LayerFF(cfg))
        self.layer = nn.ModuleList(layers)

    def forward(self, x: Tensor, self_bias: Tensor, self_cache: tuple[Tensor, Tensor, int] | None = None,
                cross_bias: Tensor | None = None, cross_kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """`self_cache` (key buffer, value buffer, past): see `T5Attention.forward`; `cross_kv` is the encoder's
        keys and values for this block's cross-attention (decoder only)."""
        sa = self.layer[0]
        x = x + sa.dropout(sa.SelfAttention(sa.layer_norm(x), self_bias, cache=self_cache))
        if cross_kv is not None:
            ca = self.layer[1]
            x = x + ca.dropout(ca.EncDecAttention(ca.layer_norm(x), cross_bias, cross_kv))
        return self.layer[-1](x)


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, S) 1 = attend, 0 = padding  ->  (B, 1, 1, S) of 0 / most negative float."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class T5Stack(nn.Module):
    """The encoder or the decoder: shared embeddings, blocks, final RMSNorm. Block 0 owns the position bias,
    which every block reuses."""

    def __init__(self, cfg: T5Config, embed_tokens: nn.Embedding, is_decoder: bool) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.embed_tokens = embed_tokens
        n = cfg.num_decoder_layers if is_decoder else cfg.num_layers
        self.block = nn.ModuleList(T5Block(cfg, i == 0, is_decoder) for i in range(n))
        self.final_layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def self_bias(self, T: int, S: int, past: int, attention_mask: Tensor | None, dtype: torch.dtype) -> Tensor:
        """Relative position bias + padding mask (+ causal mask in the decoder): (B or 1, nh, T, S)."""
        bias = self.block[0].layer[0].SelfAttention.compute_bias(T, S, past).to(dtype)
        if attention_mask is not None:
            bias = bias + additive_mask(attention_mask, dtype)
        if self.is_decoder and T > 1:
            future = torch.arange(S, device=bias.device)[None, :] > torch.arange(past, past + T, device=bias.device)[:, None]
            bias = bias.masked_fill(future, torch.finfo(dtype).min)
        return bias

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                encoder_hidden_states: Tensor | None = None, encoder_attention_mask: Tensor | None = None) -> Tensor:
        x = self.dropout(self.embed_tokens(input_ids))
        T = input_ids.size(1)
        bias = self.self_bias(T, T, 0, attention_mask, x.dtype)
        cross_bias = None
        if encoder_hidden_states is not None:
            cross_bias = (additive_mask(encoder_attention_mask, x.dtype) if encoder_attention_mask is not None
                          else x.new_zeros(1, 1, 1, 1))
        for block in self.block:
            cross_kv = None
            if encoder_hidden_states is not None:
                att = block.layer[1].EncDecAttention
                cross_kv = (att.split(att.k(encoder_hidden_states)), att.split(att.v(encoder_hidden_states)))
            x = block(x, bias, None, cross_bias, cross_kv)
        return self.dropout(self.final_layer_norm(x))


class T5Model(FromHF, nn.Module):
    """Encoder + decoder over a shared embedding; returns the decoder's last hidden state."""

    config_class = T5Config

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.config = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = T5Stack(cfg, self.shared, is_decoder=False)
        self.decoder = T5Stack(cfg, self.shared, is_decoder=True)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, decoder_input_ids: Tensor | None = None,
                decoder_attention_mask: Tensor | None = None) -> Seq2SeqOutput:
        enc = self.encoder(input_ids, attention_mask)
        dec = self.decoder(decoder_input_ids, decoder_attention_mask, enc, attention_mask)
        return Seq2SeqOutput(last_hidden_state=dec, encoder_last_hidden_state=enc)

    @staticmethod
    def convert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        return convert_hf_state_dict(hf_state_dict)


def shift_right(labels: Tensor, decoder_start_token_id: int, pad_token_id: int) -> Tensor:
    """Teacher forcing input: prepend the start token, drop the last label, turn ignored (-100) labels into pad."""
    shifted = labels.new_full(labels.shape, decoder_start_token_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_token_id)


class T5Cache:
    """Decoding state: encoder keys/values per layer (computed once), preallocated self-attention keys/values,
    the encoder padding mask and the decoder's position-bias table."""

    def __init__(self, cross_k: Tensor, cross_v: Tensor, cross_bias: Tensor, max_len: int, self_bias: Tensor) -> None:
        L, B, nh, _, dk = cross_k.shape
        self.cross_k, self.cross_v, self.cross_bias = cross_k, cross_v, cross_bias
        self.kv = cross_k.new_zeros(L, 2, B, nh, max_len, dk)  # self-attention keys and values side by side
        self.k, self.v = self.kv[:, 0], self.kv[:, 1]  # (L, B, nh, max_len, d_kv) views
        self.self_bias = self_bias  # (1, nh, max_len, max_len) position bias of every (query, key) pair
        self.length = 0
        self.seq: Tensor | None = None  # (B, length) decoder tokens, kept only by the uncached reference path

    def reorder(self, index: Tensor) -> T5Cache:
        """Rows follow `index` (beam search)."""
        if self.seq is not None:
            self.seq = self.seq[index]
        self.kv = self.kv[:, :, index]
        self.k, self.v = self.kv[:, 0], self.kv[:, 1]
        self.cross_k, self.cross_v = self.cross_k[:, index], self.cross_v[:, index]
        self.cross_bias = self.cross_bias[index]
        return self


class T5ForConditionalGeneration(FromHF, nn.Module):
    """T5Model + LM head: the text-to-text model. Loss is cross-entropy over `labels` (-100 ignored)."""

    config_class = T5Config
    convert = T5Model.convert

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.config = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = T5Stack(cfg, self.shared, is_decoder=False)
        self.decoder = T5Stack(cfg, self.shared, is_decoder=True)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.shared.weight

    def logits(self, h: Tensor) -> Tensor:
        """The LM head on decoder outputs h (..., d_model): logits (..., V)."""
        if self.config.tie_word_embeddings:  # the tied head reuses input embeddings: rescale as Mesh TF did
            h = h * self.config.d_model**-0.5
        return self.lm_head(h)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, decoder_input_ids: Tensor | None = None,
                decoder_attention_mask: Tensor | None = None, labels: Tensor | None = None) -> Seq2SeqOutput:
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("pass decoder_input_ids or labels")
            decoder_input_ids = shift_right(labels, self.config.decoder_start_token_id, self.config.pad_token_id)
        enc = self.encoder(input_ids, attention_mask)
        dec = self.decoder(decoder_input_ids, decoder_attention_mask, enc, attention_mask)
        logits = self.logits(dec)
        loss = None
        if labels is not None:
            flat = logits.flatten(0, 1)
            flat = flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat  # softmax in >= fp32
            loss = F.cross_entropy(flat, labels.flatten(), ignore_index=-100)
        return Seq2SeqOutput(last_hidden_state=dec, encoder_last_hidden_state=enc, logits=logits, loss=loss)

    def prefill_cache(self, input_ids: Tensor, attention_mask: Tensor | None, max_len: int) -> T5Cache:
        """Run the encoder once and project its output to every decoder layer's cross-attention keys/values."""
        enc = self.encoder(input_ids, attention_mask)
        ks, vs = [], []
        for block in self.decoder.block:
            att = block.layer[1].EncDecAttention
            ks.append(att.split(att.k(enc)))
            vs.append(att.split(att.v(enc)))
        cross_bias = (additive_mask(attention_mask, enc.dtype) if attention_mask is not None
                      else enc.new_zeros(input_ids.size(0), 1, 1, 1))
        self_bias = self.decoder.self_bias(max_len, max_len, 0, None, enc.dtype)  # causal mask included
        return T5Cache(torch.stack(ks), torch.stack(vs), cross_bias, max_len, self_bias)

    def decode_step(self, new_tokens: Tensor, cache: T5Cache) -> tuple[Tensor, T5Cache]:
        """Feed decoder tokens (B, t) after the cached ones, through the decoder blocks: logits of the last
        position (B, V)."""
        T, past = new_tokens.size(1), cache.length
        x = self.shared(new_tokens)
        bias = cache.self_bias[:, :, past:past + T, :past + T]  # (1, nh, T, S) position bias + causal mask
        for i, block in enumerate(self.decoder.block):
            x = block(x, bias, (cache.k[i], cache.v[i], past), cache.cross_bias, (cache.cross_k[i], cache.cross_v[i]))
        cache.length += T
        return self.logits(self.decoder.final_layer_norm(x[:, -1])), cache

    def _decode_uncached(self, new_tokens: Tensor, state: T5Cache) -> tuple[Tensor, T5Cache]:
        """Reference path: rerun the decoder over the whole sequence (kept in `state.seq`) on every step, its keys
        and values recomputed from the first position."""
        seq = new_tokens if state.length == 0 else torch.cat([state.seq, new_tokens], dim=1)
        state.seq, state.length = seq, 0
        return self.decode_step(seq, state)

    @torch.inference_mode()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None = None, max_new_tokens: int = 20,
                 use_cache: bool = True, **options) -> Tensor:
        """Encode `input_ids` (B, S) once, then decode from the start token; returns (B, 1 + new) like HF.

        `options` are those of `generation.generate` (do_sample, num_beams, temperature, top_k, top_p,
        eos_token_id, pad_token_id, length_penalty, early_stopping, generator); EOS and padding default to the
        config's. `use_cache=False` reruns the decoder on the whole sequence every step (to check the cache).
        """
        cache, start = self.start_decoding(input_ids, attention_mask, max_new_tokens)
        step = self.decode_step if use_cache else self._decode_uncached
        return generation.generate(step, start, cache, max_new_tokens=max_new_tokens,
                                   reorder_cache=T5Cache.reorder, **self.generation_options(options))

    def generation_options(self, options: dict) -> dict:
        """`options` with the config's `eos_token_id` and `pad_token_id` where they are missing or None."""
        cfg = self.config
        return {**options, "eos_token_id": cfg.eos_token_id if options.get("eos_token_id") is None
                else options["eos_token_id"], "pad_token_id": cfg.pad_token_id if options.get("pad_token_id") is None
                else options["pad_token_id"]}

    def start_decoding(self, input_ids: Tensor, attention_mask: Tensor | None,
                       max_new_tokens: int) -> tuple[T5Cache, Tensor]:
        """Check the sources (B, S), encode them into a cache for `max_new_tokens`, and the start tokens (B, 1)."""
        generation.check_prompt(input_ids)
        cache = self.prefill_cache(input_ids, attention_mask, 1 + max_new_tokens)
        return cache, input_ids.new_full((input_ids.size(0), 1), self.config.decoder_start_token_id)


def convert_hf_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """HF T5 names are ours already; fill in the tied copies a saved checkpoint may omit
    (`encoder/decoder.embed_tokens`, and `lm_head` for tied models)."""
    out = dict(sd)
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        out.setdefault(key, sd["shared.weight"])
    return out
