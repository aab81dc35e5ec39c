"""Transformer from scratch vs torch.nn: layers, stacks, full model (outputs and gradients), embeddings, KV cache.

float64 comparisons use rtol=1e-9, atol=1e-10; float32 ones 1e-5. Reference models run in eval mode with
gradients enabled, so torch takes its plain (non fast-path) route and both sides compute the same function.
"""

import math
import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_in_action.layers.attention import causal_mask, padding_mask
from pytorch_in_action.layers.embedding import PositionalEncoding, TokenEmbedding, sinusoidal_table
from pytorch_in_action.layers.feedforward import FeedForward, hf_activation
from pytorch_in_action.layers.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

F64 = {"rtol": 1e-9, "atol": 1e-10}
F32 = {"rtol": 1e-5, "atol": 1e-5}
D = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny shapes run fastest on one thread: OpenMP start-up costs more than the work (a lot on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _layer_case(seed):
    rng = random.Random(seed)
    nhead = rng.choice([1, 2, 4])
    return {
        "d_model": nhead * rng.choice([2, 4]), "nhead": nhead, "dim_feedforward": rng.choice([8, 16]),
        "dropout": 0.1, "activation": rng.choice(["relu", "gelu", torch.tanh]),
        "batch_first": rng.random() < 0.5, "norm_first": rng.random() < 0.5, "bias": rng.random() < 0.8,
        "layer_norm_eps": rng.choice([1e-5, 1e-3]),
    }, rng


def _masks(rng, g, B, T, S, causal_ok=True):
    """Random masks in nn.MultiheadAttention convention: attn mask (T, S) bool/float/causal, key padding (B, S)."""
    kind = rng.choice(["none", "bool", "float", "causal"] if causal_ok and T == S else ["none", "bool", "float"])
    mask = None
    if kind == "bool":
        mask = torch.rand(T, S, generator=g) > 0.7
        mask[:, 0] = False
    elif kind == "float":
        mask = torch.randn(T, S, dtype=D, generator=g)
    elif kind == "causal":
        mask = causal_mask(T) if rng.random() < 0.5 else nn.Transformer.generate_square_subsequent_mask(T, dtype=D)
    kpm = None
    if rng.random() < 0.5:
        kpm = padding_mask(torch.randint(1, S + 1, (B,), generator=g), S)
        if mask is not None and mask.dtype != torch.bool:  # same mask types on both, as torch prefers
            kpm = torch.zeros(B, S, dtype=D).masked_fill(kpm, float("-inf"))
    return mask, kpm


def _seq(B, T, d, batch_first, g):
    x = torch.randn(B, T, d, dtype=D, generator=g)
    return x if batch_first else x.transpose(0, 1).contiguous()


def _compare(ours, ref, inputs, call):
    """Run call(module, *leaves) on both; compare outputs, input gradients and every parameter gradient."""
    results = []
    for module in (ours, ref):
        leaves = [x.clone().requires_grad_() for x in inputs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = call(module, *leaves)
        g = torch.Generator().manual_seed(3)
        (out * torch.randn(out.shape, dtype=out.dtype, generator=g)).sum().backward()
        results.append((out, [x.grad for x in leaves], {n: p.grad for n, p in module.named_parameters()}))
    (out_o, gin_o, gp_o), (out_r, gin_r, gp_r) = results
    torch.testing.assert_close(out_o, out_r, **F64)
    for a, b in zip(gin_o, gin_r):
        torch.testing.assert_close(a, b, **F64)
    assert gp_o.keys() == gp_r.keys()
    for name in gp_r:
        torch.testing.assert_close(gp_o[name], gp_r[name], **F64, msg=name)


def _twins(ours_cls, ref_cls, *args, **kw):
    torch.manual_seed(0)
    ref = ref_cls(*args, **kw, dtype=D).eval()
    ours = ours_cls(*args, **kw, dtype=D).eval()
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


# ------------------------------------------------------------------------------- embeddings and FFN


@pytest.mark.parametrize("d_model", [6, 7, 16])
def test_sinusoidal_table_really_applies_sin_and_cos(d_model):
    pe = sinusoidal_table(50, d_model)
    expected = torch.tensor([[math.sin(p / 10000 ** (i / d_model)) if i % 2 == 0
                              else math.cos(p / 10000 ** ((i - 1) / d_model)) for i in range(d_model)]
                             for p in range(50)], dtype=D)
    torch.testing.assert_close(pe, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(pe[0, 0::2], torch.zeros(len(range(0, d_model, 2)), dtype=D))  # sin(0)
    assert torch.equal(pe[0, 1::2], torch.ones(d_model // 2, dtype=D))  # cos(0)
    assert pe.abs().max() <= 1 and pe[1:].std() > 0.5  # bounded and not a raw position ramp


@pytest.mark.parametrize("batch_first", [False, True])
def test_positional_encoding_adds_rows_from_offset(batch_first):
    pos = PositionalEncoding(8, dropout=0.0, max_len=20, batch_first=batch_first)
    x = torch.randn(2, 5, 8) if batch_first else torch.randn(5, 2, 8)
    table = sinusoidal_table(20, 8).float()
    rows = table[3:8] if batch_first else table[3:8, None, :]
    torch.testing.assert_close(pos(x, offset=3), x + rows, **F32)
    assert "pe" not in pos.state_dict()
    with pytest.raises(ValueError):
        pos(x, offset=16)


def test_token_embedding_is_scaled_by_sqrt_d_model():
    emb = TokenEmbedding(11, 16, padding_idx=0)
    tokens = torch.tensor([[1, 5, 0]])
    torch.testing.assert_close(emb(tokens), emb.embedding.weight[tokens] * 4.0, rtol=0, atol=0)
    assert torch.equal(emb(tokens)[0, 2], torch.zeros(16))
    big = TokenEmbedding(1000, 64)(torch.arange(1000))
    assert 0.95 < big.std().item() < 1.05  # unit scale, like the positional encoding, not sqrt(d_model)


def test_feed_forward_and_activation_errors():
    ff = FeedForward(8, 16, activation="gelu").double()
    x = torch.randn(3, 8, dtype=D)
    torch.testing.assert_close(ff(x), ff.linear2(F.gelu(ff.linear1(x))), **F64)
    with pytest.raises(RuntimeError, match="activation should be"):  # as nn.TransformerEncoderLayer
        FeedForward(8, 16, activation="swish")


def test_hf_activations_match_their_transformers_names():
    from transformers.activations import ACT2FN

    z = torch.linspace(-5, 5, 101, dtype=D)
    for name in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"):
        torch.testing.assert_close(hf_activation(name)(z), ACT2FN[name](z), rtol=1e-12, atol=1e-12, msg=name)
        buf = z.clone()
        assert hf_activation(name, inplace=True)(buf).data_ptr() == buf.data_ptr()  # written into its input
        assert torch.equal(buf, hf_activation(name)(z)), name
    with pytest.raises(ValueError, match="unsupported activation 'bogus'; known: gelu"):
        hf_activation("bogus")


# --------------------------------------------------------------------------------- layers vs torch


@pytest.mark.parametrize("seed", range(16))
def test_encoder_layer_equals_torch(seed):
    kw, rng = _layer_case(seed)
    ours, ref = _twins(TransformerEncoderLayer, nn.TransformerEncoderLayer, **kw)
    g = torch.Generator().manual_seed(seed)
    B, T = rng.randint(1, 3), rng.randint(1, 6)
    mask, kpm = _masks(rng, g, B, T, T)
    x = _seq(B, T, kw["d_model"], kw["batch_first"], g)
    _compare(ours, ref, [x], lambda m, x: m(x, src_mask=mask, src_key_padding_mask=kpm))


@pytest.mark.parametrize("seed", range(16))
def test_decoder_layer_equals_torch(seed):
    kw, rng = _layer_case(100 + seed)
    ours, ref = _twins(TransformerDecoderLayer, nn.TransformerDecoderLayer, **kw)
    g = torch.Generator().manual_seed(seed)
    B, T, S = rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6)
    tgt_mask, tgt_kpm = _masks(rng, g, B, T, T)
    mem_mask, mem_kpm = _masks(rng, g, B, T, S, causal_ok=False)
    tgt, mem = _seq(B, T, kw["d_model"], kw["batch_first"], g), _seq(B, S, kw["d_model"], kw["batch_first"], g)
    _compare(ours, ref, [tgt, mem], lambda m, t, s: m(t, s, tgt_mask=tgt_mask, memory_mask=mem_mask,
                                                      tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=mem_kpm))


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_stacks_equal_torch(norm_first):
    kw = {"d_model": 8, "nhead": 2, "dim_feedforward": 16, "norm_first": norm_first, "batch_first": True}
    torch.manual_seed(0)
    ref_enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw, dtype=D), 3, nn.LayerNorm(8, dtype=D),
                                    enable_nested_tensor=False).eval()
    ours_enc = TransformerEncoder(TransformerEncoderLayer(**kw, dtype=D), 3, nn.LayerNorm(8, dtype=D)).eval()
    ours_enc.load_state_dict(ref_enc.state_dict())
    ref_dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw, dtype=D), 2).eval()
    ours_dec = TransformerDecoder(TransformerDecoderLayer(**kw, dtype=D), 2).eval()
    ours_dec.load_state_dict(ref_dec.state_dict())
    g = torch.Generator().manual_seed(1)
    src, tgt = _seq(2, 6, 8, True, g), _seq(2, 4, 8, True, g)
    kpm = padding_mask([6, 4], 6)
    _compare(ours_enc, ref_enc, [src], lambda m, s: m(s, src_key_padding_mask=kpm))
    _compare(ours_dec, ref_dec, [tgt, src], lambda m, t, s: m(t, s, tgt_mask=causal_mask(4),
                                                              memory_key_padding_mask=kpm, tgt_is_causal=True))


@pytest.mark.parametrize("seed", range(8))
def test_full_transformer_equals_torch(seed):
    kw, rng = _layer_case(200 + seed)
    kw = {k: v for k, v in kw.items() if k != "dropout"}
    kw.update(num_encoder_layers=rng.randint(1, 2), num_decoder_layers=rng.randint(1, 2))
    ours, ref = _twins(Transformer, nn.Transformer, **kw)
    g = torch.Generator().manual_seed(seed)
    B, S, T = rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6)
    src_mask, src_kpm = _masks(rng, g, B, S, S)
    tgt_mask = causal_mask(T)
    mem_kpm = src_kpm
    src, tgt = _seq(B, S, kw["d_model"], kw["batch_first"], g), _seq(B, T, kw["d_model"], kw["batch_first"], g)
    _compare(ours, ref, [src, tgt], lambda m, s, t: m(s, t, src_mask=src_mask, tgt_mask=tgt_mask,
                                                      src_key_padding_mask=src_kpm, memory_key_padding_mask=mem_kpm))


def test_full_transformer_float32_default_init_shapes():
    torch.manual_seed(0)
    ref = nn.Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64,
                         batch_first=True).eval()
    ours = Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64,
                       batch_first=True).eval()
    ours.load_state_dict(ref.state_dict())
    src, tgt = torch.randn(2, 9, 32), torch.randn(2, 7, 32)
    torch.testing.assert_close(ours(src, tgt, tgt_mask=causal_mask(7)), ref(src, tgt, tgt_mask=causal_mask(7)),
                               **F32)
    torch.testing.assert_close(Transformer.generate_square_subsequent_mask(5),
                               nn.Transformer.generate_square_subsequent_mask(5), rtol=0, atol=0)
    with pytest.raises(ValueError):
        ours(src, tgt[:1])


def test_dropout_trains_and_eval_is_deterministic():
    torch.manual_seed(0)
    model = Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32,
                        dropout=0.3, batch_first=True)
    src, tgt = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    model.eval()
    y_eval = model(src, tgt, tgt_is_causal=True)
    torch.testing.assert_close(model(src, tgt, tgt_is_causal=True), y_eval, rtol=0, atol=0)
    model.train()
    y1, y2 = model(src, tgt, tgt_is_causal=True), model(src, tgt, tgt_is_causal=True)
    assert not torch.allclose(y1, y_eval) and not torch.allclose(y1, y2)
    y1.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ------------------------------------------------------------------------------------- KV-cache decoding


class TinySeq2Seq(nn.Module):
    """Embeddings + positional encoding + Transformer + output projection, enough to decode greedily."""

    def __init__(self, vocab, d_model, batch_first, norm_first):
        super().__init__()
        self.batch_first = batch_first
        self.src_emb, self.tgt_emb = TokenEmbedding(vocab, d_model), TokenEmbedding(vocab, d_model)
        self.pos = PositionalEncoding(d_model, max_len=64, batch_first=batch_first)
        self.transformer = Transformer(d_model, 2, 2, 2, 32, dropout=0.0, batch_first=batch_first,
                                       norm_first=norm_first)
        self.generator = nn.Linear(d_model, vocab)

    def embed(self, emb, tokens, offset=0):  # tokens (B, T)
        x = emb(tokens if self.batch_first else tokens.T)
        return self.pos(x, offset)

    def logits(self, out):  # last position, (B, vocab)
        return self.generator(out[:, -1] if self.batch_first else out[-1])

    def greedy(self, src, src_kpm, steps, use_cache, bos=1):
        memory = self.transformer.encode(self.embed(self.src_emb, src), src_key_padding_mask=src_kpm)
        ys = torch.full((src.size(0), 1), bos)
        cache, step_logits = None, []
        for _ in range(steps):
            if use_cache:
                x = self.embed(self.tgt_emb, ys[:, -1:], offset=ys.size(1) - 1)
                out, cache = self.transformer.decode_step(x, memory, cache, memory_key_padding_mask=src_kpm)
            else:
                T = ys.size(1)
                out = self.transformer.decoder(self.embed(self.tgt_emb, ys), memory, tgt_mask=causal_mask(T),
                                               memory_key_padding_mask=src_kpm)
            step_logits.append(self.logits(out))
            ys = torch.cat([ys, step_logits[-1].argmax(-1, keepdim=True)], dim=1)
        return ys, torch.stack(step_logits, 1), cache


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_greedy_decoding_with_and_without_cache_is_identical(batch_first, norm_first):
    torch.manual_seed(0)
    model = TinySeq2Seq(13, 16, batch_first, norm_first).double().eval()
    src = torch.randint(2, 13, (3, 7))
    src_kpm = padding_mask([7, 5, 2], 7)
    with torch.no_grad():
        ys_full, logits_full, _ = model.greedy(src, src_kpm, 10, use_cache=False)
        ys_cached, logits_cached, cache = model.greedy(src, src_kpm, 10, use_cache=True)
    assert torch.equal(ys_cached, ys_full)
    torch.testing.assert_close(logits_cached, logits_full, **F64)
    assert cache.seq_len == 10 and cache.self_kv[1][0].shape == (3, 2, 10, 8) and cache.cross_kv[0][0].shape[2] == 7
    assert len(set(ys_full[:, 1:].flatten().tolist())) > 1  # a non-degenerate decode


def test_causal_mask_matters_for_decoding():
    """Without the causal mask, early positions see later ones and the per-position outputs change."""
    torch.manual_seed(0)
    model = TinySeq2Seq(13, 16, True, False).double().eval()
    memory = model.transformer.encode(model.embed(model.src_emb, torch.randint(2, 13, (2, 5))))
    tgt = model.embed(model.tgt_emb, torch.randint(2, 13, (2, 6)))
    with_mask = model.transformer.decoder(tgt, memory, tgt_mask=causal_mask(6))
    without = model.transformer.decoder(tgt, memory)
    assert not torch.allclose(with_mask[:, 0], without[:, 0])
    # with the mask, a prefix's outputs do not depend on the future
    torch.testing.assert_close(model.transformer.decoder(tgt[:, :3], memory, tgt_mask=causal_mask(3)),
                               with_mask[:, :3], **F64)


@pytest.mark.parametrize("batch_first", [False, True])
def test_cache_prefill_and_beam_reorder(batch_first):
    torch.manual_seed(0)
    model = TinySeq2Seq(11, 16, batch_first, True).double().eval()
    tr = model.transformer
    src = torch.randint(2, 11, (3, 6))
    kpm = padding_mask([6, 4, 3], 6)
    memory = tr.encode(model.embed(model.src_emb, src), src_key_padding_mask=kpm)
    ys = torch.randint(2, 11, (3, 5))
    cat = 1 if batch_first else 0
    with torch.no_grad():
        full = tr.decoder(model.embed(model.tgt_emb, ys), memory, tgt_mask=causal_mask(5), memory_key_padding_mask=kpm)
        out_a, cache = tr.decode_step(model.embed(model.tgt_emb, ys[:, :3]), memory, None, kpm)  # prefill 3
        out_b, cache = tr.decode_step(model.embed(model.tgt_emb, ys[:, 3:], offset=3), None, cache)  # then 2
        torch.testing.assert_close(torch.cat([out_a, out_b], cat), full, **F64)

        beam_idx = torch.tensor([2, 0, 0])  # rows 0 and 1 continue from hypotheses 2 and 0
        reordered = cache.reorder(beam_idx)
        nxt = torch.randint(2, 11, (3, 1))
        ys2 = torch.cat([ys[beam_idx], nxt], 1)
        step, _ = tr.decode_step(model.embed(model.tgt_emb, nxt, offset=5), None, reordered)
        mem2 = memory[beam_idx] if batch_first else memory[:, beam_idx]
        full2 = tr.decoder(model.embed(model.tgt_emb, ys2), mem2, tgt_mask=causal_mask(6),
                           memory_key_padding_mask=kpm[beam_idx])
        torch.testing.assert_close(step, full2[:, -1:] if batch_first else full2[-1:], **F64)
    assert cache.seq_len == 5 and reordered.seq_len == 6  # the step grew the reordered copy only
