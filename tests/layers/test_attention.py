"""Attention from scratch vs torch: F.scaled_dot_product_attention and nn.MultiheadAttention, forward and backward.

float64 comparisons use rtol=1e-9, atol=1e-10 (the two sides only differ by summation order); float32 ones 1e-5.
"""

import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_in_action.layers.attention import (
    MultiheadAttention,
    attention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)

F64 = {"rtol": 1e-9, "atol": 1e-10}
F32 = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny shapes run fastest on one thread: OpenMP start-up costs more than the work (a lot on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _grads(tensors):
    return [t.grad.clone() for t in tensors]


# ------------------------------------------------------------------------------------------------ SDPA


def _sdpa_case(seed):
    """A random SDPA configuration: shapes, mask kind, scale."""
    rng = random.Random(seed)
    B, H, L, S = rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6)
    E, Ev = rng.randint(1, 8), rng.randint(1, 8)
    kind = rng.choice(["none", "bool", "float", "causal", "bool_bcast", "float_bcast"])
    scale = rng.choice([None, 0.3])
    return (B, H, L, S, E, Ev), kind, scale


@pytest.mark.parametrize("seed", range(24))
def test_sdpa_equals_torch_forward_and_backward(seed):
    (B, H, L, S, E, Ev), kind, scale = _sdpa_case(seed)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, L, E, dtype=torch.float64, generator=g)
    k = torch.randn(B, H, S, E, dtype=torch.float64, generator=g)
    v = torch.randn(B, H, S, Ev, dtype=torch.float64, generator=g)
    mask, is_causal = None, kind == "causal"
    if kind.startswith("bool"):
        shape = (L, S) if kind == "bool_bcast" else (B, H, L, S)
        mask = torch.rand(shape, generator=g) > 0.3
        mask[..., 0] = True  # keep every row attending to something (fully masked rows are tested apart)
    elif kind.startswith("float"):
        shape = (B, 1, L, S) if kind == "float_bcast" else (B, H, L, S)
        mask = torch.randn(shape, dtype=torch.float64, generator=g)
    dy = torch.randn(B, H, L, Ev, dtype=torch.float64, generator=g)

    outs, grads = [], []
    for fn in (scaled_dot_product_attention, F.scaled_dot_product_attention):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = fn(qq, kk, vv, attn_mask=mask, is_causal=is_causal, scale=scale)
        out.backward(dy)
        outs.append(out)
        grads.append(_grads((qq, kk, vv)))
    torch.testing.assert_close(outs[0], outs[1], **F64)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, **F64)


def test_sdpa_float32_and_float_mask_gradient():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 16, generator=g) for _ in range(3))
    m1 = torch.randn(7, 7, generator=g).requires_grad_()
    m2 = m1.detach().clone().requires_grad_()
    a = scaled_dot_product_attention(q, k, v, attn_mask=m1)
    b = F.scaled_dot_product_attention(q, k, v, attn_mask=m2)
    torch.testing.assert_close(a, b, **F32)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(m1.grad, m2.grad, **F32)


def test_sdpa_fully_masked_rows_give_zero_like_torch():
    q = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    ours = scaled_dot_product_attention(q, q, q, attn_mask=mask)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, q, q, attn_mask=mask), **F64)
    assert torch.equal(ours[:, :, 1], torch.zeros_like(ours[:, :, 1]))


def test_sdpa_causal_with_mask_is_an_error():
    q = torch.randn(1, 1, 3, 4)
    with pytest.raises(ValueError):
        scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(3, 3, dtype=torch.bool), is_causal=True)


def test_sdpa_dropout_zeroes_weights_and_rescales_the_rest():
    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 4, 32, 16) for _ in range(3))
    p = 0.25
    out, w_drop = attention(q, k, v, dropout_p=p)
    _, w = attention(q, k, v)
    kept = w_drop != 0
    assert 0.70 < kept.float().mean().item() < 0.80  # about 1 - p of 16k weights survive
    torch.testing.assert_close(w_drop[kept], w[kept] / (1 - p), **F32)
    torch.testing.assert_close(out, w_drop @ v, **F32)


def test_mask_builders():
    torch.testing.assert_close(causal_mask(5), nn.Transformer.generate_square_subsequent_mask(5) == float("-inf"))
    assert causal_mask(2, 3).tolist() == [[False, True, True], [False, False, True]]
    assert padding_mask([3, 1], 4).tolist() == [[False, False, False, True], [False, True, True, True]]
    assert padding_mask(torch.tensor([2, 2])).shape == (2, 2)


# ----------------------------------------------------------------------------------- MultiheadAttention


def _mha_case(seed):
    rng = random.Random(1000 + seed)
    nh = rng.choice([1, 2, 4])
    E = nh * rng.choice([2, 3, 4])
    cross = rng.random() < 0.5
    kdim, vdim = (rng.choice([None, 5]), rng.choice([None, 3])) if cross else (None, None)
    return {
        "ctor": {"embed_dim": E, "num_heads": nh, "bias": rng.random() < 0.8, "add_bias_kv": rng.random() < 0.25,
                 "add_zero_attn": rng.random() < 0.25, "kdim": kdim, "vdim": vdim,
                 "batch_first": rng.random() < 0.5},
        "B": rng.randint(1, 3), "L": rng.randint(1, 5), "S": rng.randint(2, 6) if cross else None,
        "unbatched": rng.random() < 0.15,
        "attn_mask": rng.choice([None, "bool2d", "float2d", "bool3d", "float3d"]),
        "kpm": rng.choice([None, "bool", "float"]),
        "need_weights": rng.random() < 0.6, "average": rng.random() < 0.5, "fused": rng.random() < 0.5,
    }


def _mha_inputs(case, g, dtype=torch.float64):
    c = case["ctor"]
    B, L, E, nh = case["B"], case["L"], c["embed_dim"], c["num_heads"]
    S = case["S"] or L
    kdim, vdim = c["kdim"] or E, c["vdim"] or E
    q = torch.randn(B, L, E, dtype=dtype, generator=g)
    if case["S"] is None:
        k = v = q
    else:
        k, v = torch.randn(B, S, kdim, dtype=dtype, generator=g), torch.randn(B, S, vdim, dtype=dtype, generator=g)
    kind = case["attn_mask"]
    mask = None
    if kind:
        shape = (L, S) if kind.endswith("2d") else (B * nh, L, S)
        mask = torch.rand(shape, generator=g) > 0.7 if kind.startswith("bool") else \
            torch.randn(shape, dtype=dtype, generator=g)
        if mask.dtype == torch.bool:
            mask[..., 0] = False  # no fully blocked rows (torch's weights path gives NaN there)
    kpm = None
    if case["kpm"]:
        lengths = torch.randint(1, S + 1, (B,), generator=g)
        kpm = padding_mask(lengths, S)
        kpm[:, 0] = False
        if case["kpm"] == "float":
            kpm = torch.zeros(B, S, dtype=dtype).masked_fill(kpm, -1e9)
    if case["unbatched"]:
        q, k, v = q[0], k[0], v[0]
        kpm = None if kpm is None else kpm[0]
        mask = mask[:nh] if mask is not None and mask.dim() == 3 else mask
    elif not c["batch_first"]:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    return q, k, v, mask, kpm


def _run_mha(module, case, q, k, v, mask, kpm):
    self_attn = case["S"] is None
    leaves = [t.clone().requires_grad_() for t in ((q,) if self_attn else (q, k, v))]
    qq, kk, vv = (leaves * 3) if self_attn else leaves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns on mixed bool/float mask types
        out, w = module(qq, kk, vv, key_padding_mask=kpm, need_weights=case["need_weights"], attn_mask=mask,
                        average_attn_weights=case["average"])
    g = torch.Generator().manual_seed(7)
    (out * torch.randn(out.shape, dtype=out.dtype, generator=g)).sum().backward()
    return out, w, _grads(leaves), {n: p.grad for n, p in module.named_parameters()}


@pytest.mark.parametrize("seed", range(40))
def test_multihead_attention_equals_torch(seed):
    case = _mha_case(seed)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(**case["ctor"], dtype=torch.float64).eval()
    ours = MultiheadAttention(**case["ctor"], dtype=torch.float64).eval()
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ours.load_state_dict(ref.state_dict())
    ours.fused = case["fused"]
    inputs = _mha_inputs(case, g)
    out_o, w_o, gin_o, gp_o = _run_mha(ours, case, *inputs)
    out_r, w_r, gin_r, gp_r = _run_mha(ref, case, *inputs)
    torch.testing.assert_close(out_o, out_r, **F64)
    if case["need_weights"]:
        torch.testing.assert_close(w_o, w_r, **F64)
    else:
        assert w_o is None and w_r is None
    for a, b in zip(gin_o, gin_r):
        torch.testing.assert_close(a, b, **F64)
    assert gp_o.keys() == gp_r.keys()
    for name in gp_r:
        torch.testing.assert_close(gp_o[name], gp_r[name], **F64, msg=name)


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_float32(batch_first):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(32, 4, batch_first=batch_first).eval()
    ours = MultiheadAttention(32, 4, batch_first=batch_first).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 10, 32) if batch_first else torch.randn(10, 3, 32)
    kpm = padding_mask([10, 7, 4], 10)
    for need_weights in (True, False):
        a = ours(x, x, x, key_padding_mask=kpm, need_weights=need_weights)
        b = ref(x, x, x, key_padding_mask=kpm, need_weights=need_weights)
        torch.testing.assert_close(a[0], b[0], **F32)
        if need_weights:
            torch.testing.assert_close(a[1], b[1], **F32)


@pytest.mark.parametrize("kw", [{}, {"add_bias_kv": True}, {"add_zero_attn": True}])
@pytest.mark.parametrize("need_weights", [True, False])
def test_is_causal_equals_an_explicit_causal_mask(kw, need_weights):
    """Our is_causal applies the causal mask itself; torch needs the mask too (it only reads is_causal as a hint)."""
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, 2, dtype=torch.float64, **kw).eval()
    ours = MultiheadAttention(8, 2, dtype=torch.float64, **kw).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 8, dtype=torch.float64)
    kpm = padding_mask([5, 3], 5)
    a = ours(x, x, x, is_causal=True, need_weights=need_weights, key_padding_mask=kpm)[0]
    b = ref(x, x, x, attn_mask=causal_mask(5), need_weights=True, key_padding_mask=kpm)[0]
    torch.testing.assert_close(a, b, **F64)
    if not kw:
        a = ours(x, x, x, is_causal=True, need_weights=need_weights)[0]
        b = ref(x, x, x, attn_mask=causal_mask(5), is_causal=True, need_weights=need_weights)[0]
        torch.testing.assert_close(a, b, **F64)


def test_head_count_comes_from_the_module():
    """Two modules with different head counts side by side each match their own torch twin."""
    x = torch.randn(4, 2, 12, dtype=torch.float64)
    outs = []
    for nh in (1, 3, 6):
        torch.manual_seed(0)
        ref = nn.MultiheadAttention(12, nh, dtype=torch.float64).eval()
        ours = MultiheadAttention(12, nh, dtype=torch.float64).eval()
        ours.load_state_dict(ref.state_dict())
        assert ours.head_dim == 12 // nh
        out, w = ours(x, x, x, average_attn_weights=False)
        assert w.shape == (2, nh, 4, 4)
        torch.testing.assert_close(out, ref(x, x, x)[0], **F64)
        outs.append(out)
    assert not torch.allclose(outs[0], outs[1])  # same weights, different split: really different attention


def test_initialisation_matches_torch_layout():
    ours = MultiheadAttention(16, 4, add_bias_kv=True, kdim=8, vdim=8)
    assert ours.in_proj_weight is None and ours.q_proj_weight.shape == (16, 16) and ours.k_proj_weight.shape == (16, 8)
    assert torch.count_nonzero(ours.in_proj_bias) == 0 and torch.count_nonzero(ours.out_proj.bias) == 0
    assert ours.bias_k.shape == (1, 1, 16)
    with pytest.raises(ValueError):
        MultiheadAttention(10, 3)


def test_dropout_in_train_mode():
    torch.manual_seed(0)
    mha = MultiheadAttention(16, 4, dropout=0.5)
    x = torch.randn(6, 2, 16)
    mha.eval()
    y_eval, w_eval = mha(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(mha(x, x, x)[0], y_eval, rtol=0, atol=0)  # eval is deterministic
    mha.train()
    y_train, w_train = mha(x, x, x, average_attn_weights=False)
    kept = w_train != 0
    assert 0.3 < kept.float().mean().item() < 0.7
    torch.testing.assert_close(w_train[kept], w_eval[kept] * 2, **F32)  # survivors scaled by 1 / (1 - p)
    assert not torch.allclose(y_train, y_eval)
    y_fused = mha(x, x, x, need_weights=False)[0]  # the fused kernel drops too
    assert not torch.allclose(y_fused, y_eval)
    y_fused.sum().backward()
    assert mha.in_proj_weight.grad is not None and torch.isfinite(mha.in_proj_weight.grad).all()
