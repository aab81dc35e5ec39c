"""Parity of the from-scratch RNN / LSTM / GRU stacks with torch.nn, float64, atol=rtol=1e-10.

torch's state_dict is loaded into ours with strict=True; outputs, final states and the gradients of the input,
the initial states and every parameter are compared over random configurations.
"""

import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

from pytorch_in_action.layers import rnn as R

TOL = {"atol": 1e-10, "rtol": 1e-10}
KINDS = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def build(kind: str, **kw) -> tuple[nn.Module, nn.Module]:
    """torch's module and ours with the same arguments, ours loaded with torch's state_dict (strict)."""
    if kind.startswith("RNN"):
        kw["nonlinearity"] = "tanh" if kind == "RNN_TANH" else "relu"
        ref, ours = nn.RNN(**kw), R.RNN(**kw)
    else:
        ref, ours = getattr(nn, kind)(**kw), getattr(R, kind)(**kw)
    ref, ours = ref.double(), ours.double()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def initial_state(kind: str, shape: tuple[int, ...]):
    h = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    if kind != "LSTM":
        return h
    return h, torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def leaves(hx) -> list[torch.Tensor]:
    return [] if hx is None else list(hx) if isinstance(hx, tuple) else [hx]


def flat(out) -> list[torch.Tensor]:
    """(output, h_n) or (output, (h_n, c_n)) as a list of tensors; a PackedSequence contributes its data."""
    output, hn = out
    output = output.data if isinstance(output, nn.utils.rnn.PackedSequence) else output
    return [output, *(hn if isinstance(hn, tuple) else (hn,))]


def check_same(ref, ours, x, hx, x_leaf, make_input=lambda x: x, **fw):
    """Forward both, compare outputs, then compare gradients of a random projection of all outputs."""
    out_ref, out_ours = flat(ref(make_input(x), hx)), flat(ours(make_input(x), hx, **fw))
    assert_close(out_ours, out_ref, **TOL)
    weights = [torch.randn_like(t) for t in out_ref]
    inputs = [x_leaf, *leaves(hx), *ref.parameters()]
    g_ref = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, out_ref)), inputs)
    inputs = [x_leaf, *leaves(hx), *ours.parameters()]
    g_ours = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, out_ours)), inputs)
    assert_close(g_ours, g_ref, **TOL)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", KINDS)
def test_stack_matches_torch(kind, seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cfg = {"input_size": rng.randint(1, 5), "hidden_size": rng.randint(1, 6), "num_layers": rng.randint(1, 3),
           "bias": rng.random() < 0.8, "batch_first": rng.random() < 0.5, "bidirectional": rng.random() < 0.5,
           "dropout": 0.0}
    if cfg["num_layers"] > 1:
        cfg["dropout"] = rng.choice([0.0, 0.3])  # dropout > 0 in eval mode must change nothing
    ref, ours = build(kind, **cfg)
    ref.eval(), ours.eval()
    T, B = rng.randint(1, 6), rng.randint(1, 4)
    shape = (B, T, cfg["input_size"]) if cfg["batch_first"] else (T, B, cfg["input_size"])
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    D = 2 if cfg["bidirectional"] else 1
    hx = initial_state(kind, (cfg["num_layers"] * D, B, cfg["hidden_size"])) if rng.random() < 0.6 else None
    check_same(ref, ours, x, hx, x)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", KINDS)
def test_packed_variable_lengths_match_torch(kind, seed):
    rng = random.Random(100 + seed)
    torch.manual_seed(seed)
    L, H, I, bi = rng.randint(1, 2), rng.randint(1, 5), rng.randint(1, 4), rng.random() < 0.7
    ref, ours = build(kind, input_size=I, hidden_size=H, num_layers=L, bidirectional=bi)
    B, T = rng.randint(1, 5), rng.randint(2, 7)
    lengths = [rng.randint(1, T) for _ in range(B)]
    lengths[rng.randrange(B)] = T
    enforce_sorted = seed % 2 == 0
    if enforce_sorted:
        lengths.sort(reverse=True)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    hx = initial_state(kind, (L * (2 if bi else 1), B, H)) if seed % 3 else None
    pack = lambda x: pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)  # noqa: E731
    check_same(ref, ours, x, hx, x, make_input=pack)

    # the padded batch + lengths form: zeros past each end, and the same final states as the packed run
    out_pad, hn_ours = ours(x, hx, lengths=lengths)
    out_ref, hn_ref = ref(pack(x), hx)
    assert_close(out_pad, pad_packed_sequence(out_ref, total_length=T)[0], **TOL)
    assert_close(hn_ours, hn_ref, **TOL)
    for b, n in enumerate(lengths):
        assert torch.all(out_pad[n:, b] == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_and_cells(kind):
    torch.manual_seed(0)
    ref, ours = build(kind, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    check_same(ref, ours, x, initial_state(kind, (4, 4)), x)

    cell_cls = {"LSTM": "LSTMCell", "GRU": "GRUCell"}.get(kind, "RNNCell")
    kw = {"nonlinearity": "tanh" if kind == "RNN_TANH" else "relu"} if kind.startswith("RNN") else {}
    ref_cell = getattr(nn, cell_cls)(3, 4, **kw).double()
    cell = getattr(R, cell_cls)(3, 4, **kw).double()
    cell.load_state_dict(ref_cell.state_dict(), strict=True)
    for xb, shape in ((torch.randn(6, 3, dtype=torch.float64), (6, 4)), (torch.randn(3, dtype=torch.float64), (4,))):
        hx = initial_state(kind, shape)
        assert_close(cell(xb, hx), ref_cell(xb, hx), **TOL)
        assert_close(cell(xb), ref_cell(xb), **TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_one_matches_torch_in_train_mode(kind):
    """With p=1 the inter-layer dropout is deterministic (all zeros), so train mode is comparable with torch."""
    torch.manual_seed(0)
    ref, ours = build(kind, input_size=3, hidden_size=4, num_layers=3, dropout=1.0)
    ref.train(), ours.train()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    check_same(ref, ours, x, None, x)


def test_dropout_statistics_and_gradient_flow(monkeypatch):
    """In train mode each inter-layer activation is zeroed with probability p and the rest scaled by 1/(1-p)."""
    seen = []
    real = torch.nn.functional.dropout

    def spy(x, p, training=True, inplace=False):
        y = real(x, p, training, inplace)
        seen.append((x.detach(), y.detach(), p, training))
        return y

    monkeypatch.setattr(torch.nn.functional, "dropout", spy)
    torch.manual_seed(0)
    model = R.LSTM(8, 64, num_layers=3, dropout=0.4, bidirectional=True)
    x = torch.randn(20, 16, 8)
    out, (h, c) = model(x)
    assert len(seen) == 2  # between layers 1-2 and 2-3, not after the last
    for xin, y, p, training in seen:
        assert training and p == 0.4
        kept = y != 0
        assert abs(kept.float().mean().item() - 0.6) < 0.02  # 40960 draws: 5 standard deviations is 0.012
        assert_close(y[kept], xin[kept] / 0.6)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    seen.clear()
    model.eval()
    out_a, _ = model(x)
    out_b, _ = model(x)
    assert not seen and torch.equal(out_a, out_b)


@pytest.mark.parametrize("kind", KINDS)
def test_init_draws_like_torch(kind):
    """Same parameter order and U(-1/sqrt(H), 1/sqrt(H)) init: the same seed gives the same parameters."""
    kw = {"input_size": 5, "hidden_size": 7, "num_layers": 2, "bidirectional": True}
    if kind.startswith("RNN"):
        kw["nonlinearity"] = "tanh" if kind == "RNN_TANH" else "relu"
    torch.manual_seed(3)
    ref = (nn.RNN if kind.startswith("RNN") else getattr(nn, kind))(**kw)
    torch.manual_seed(3)
    ours = (R.RNN if kind.startswith("RNN") else getattr(R, kind))(**kw)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert_close(dict(ours.state_dict()), dict(ref.state_dict()), atol=0, rtol=0)


BAD_RNN = [  # (ours, torch's twin, what our message names): the same mistake given to both
    (lambda: R.GRU(3, 4)(torch.randn(5, 2, 4)), lambda: torch.nn.GRU(3, 4)(torch.randn(5, 2, 4)), "features"),
    (lambda: R.GRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(2, 2, 4)),
     lambda: torch.nn.GRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(2, 2, 4)), "initial state"),
    (lambda: R.RNN(3, 4, nonlinearity="sigmoid"), lambda: torch.nn.RNN(3, 4, nonlinearity="sigmoid"), "nonlinearity"),
    (lambda: R.LSTM(3, 4, dropout=1.5), lambda: torch.nn.LSTM(3, 4, dropout=1.5), "dropout"),
    (lambda: R.LSTM(3, 0), lambda: torch.nn.LSTM(3, 0), "positive"),
]


@pytest.mark.parametrize("ours, ref, says", BAD_RNN, ids=["features", "initial-state", "nonlinearity", "dropout",
                                                          "hidden-size"])
def test_bad_input_raises_what_torch_raises_with_one_clear_line(ours, ref, says):
    """The exception class of torch's twin, so `except` clauses written for torch work the same around ours."""
    with pytest.raises(Exception) as theirs:
        ref()
    with pytest.raises(theirs.type, match=says):
        ours()


def test_bad_lengths_are_a_value_error():
    with pytest.raises(ValueError, match="lengths"):  # torch's packing takes them in other forms: no twin here
        R.GRU(3, 4)(torch.randn(5, 2, 3), lengths=[6, 2])
