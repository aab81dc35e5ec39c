"""Parity of the from-scratch convolutions with torch: outputs and gradients in float64, atol=rtol=1e-10."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from pytorch_in_action.layers import conv as C

TOL = {"atol": 1e-10, "rtol": 1e-10}
FORWARDS = [C.conv2d_naive, C.conv2d_im2col, C.conv2d_unfold, C.conv2d_shifted, C.conv2d]
TRANSPOSED = [C.conv_transpose2d, C.conv_transpose2d_scatter]


def random_config(rng: random.Random) -> dict:
    """A random conv2d configuration: groups, channels, kernel, stride, padding, dilation, input size."""
    G = rng.choice([1, 1, 2, 3])
    kh, kw = rng.randint(1, 4), rng.randint(1, 4)
    d = (rng.randint(1, 2), rng.randint(1, 2))
    return {
        "G": G, "C": G * rng.randint(1, 3), "O": G * rng.randint(1, 3), "k": (kh, kw),
        "stride": (rng.randint(1, 3), rng.randint(1, 3)), "padding": (rng.randint(0, 2), rng.randint(0, 2)),
        "dilation": d, "N": rng.randint(1, 3),
        "H": d[0] * (kh - 1) + 1 + rng.randint(0, 5), "W": d[1] * (kw - 1) + 1 + rng.randint(0, 5),
    }


def tensors(cfg: dict, transposed: bool = False):
    x = torch.randn(cfg["N"], cfg["C"], cfg["H"], cfg["W"], dtype=torch.float64, requires_grad=True)
    shape = (cfg["C"], cfg["O"] // cfg["G"]) if transposed else (cfg["O"], cfg["C"] // cfg["G"])
    w = torch.randn(*shape, *cfg["k"], dtype=torch.float64, requires_grad=True)
    b = torch.randn(cfg["O"], dtype=torch.float64, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("seed", range(25))
def test_forward_and_autograd_match_f_conv2d(seed):
    cfg = random_config(random.Random(seed))
    torch.manual_seed(seed)
    x, w, b = tensors(cfg)
    args = (cfg["stride"], cfg["padding"], cfg["dilation"], cfg["G"])
    ref = F.conv2d(x, w, b, *args)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, w, b), grad)
    for fn in FORWARDS:
        out = fn(x, w, b, *args)
        assert_close(out, ref, **TOL, msg=lambda m, fn=fn: f"{fn.__name__} {cfg}: {m}")
        assert_close(torch.autograd.grad(out, (x, w, b), grad), ref_grads, **TOL)


@pytest.mark.parametrize("seed", range(25))
def test_backward_as_convolutions_matches_autograd(seed):
    cfg = random_config(random.Random(seed))
    torch.manual_seed(seed)
    x, w, b = tensors(cfg)
    args = (cfg["stride"], cfg["padding"], cfg["dilation"], cfg["G"])
    ref = F.conv2d(x, w, b, *args)
    grad = torch.randn_like(ref)
    assert_close(C.conv2d_backward(grad, x, w, *args), torch.autograd.grad(ref, (x, w, b), grad), **TOL)


@pytest.mark.parametrize("seed", range(25))
def test_conv_transpose2d_matches_torch(seed):
    rng = random.Random(seed)
    cfg = random_config(rng)
    torch.manual_seed(seed)
    x, w, b = tensors(cfg, transposed=True)
    s, d = cfg["stride"], cfg["dilation"]
    # torch requires output_padding < max(stride, dilation) and padding small enough for a positive size
    op = tuple(rng.randint(0, max(si, di) - 1) for si, di in zip(s, d))
    args = (s, cfg["padding"], op, cfg["G"], d)
    out_size = [(n - 1) * si - 2 * p + di * (k - 1) + o + 1
                for n, si, p, di, k, o in zip((cfg["H"], cfg["W"]), s, cfg["padding"], d, cfg["k"], op)]
    if min(out_size) <= 0:
        args = (s, 0, op, cfg["G"], d)
    ref = F.conv_transpose2d(x, w, b, *args)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, w, b), grad)
    for fn in TRANSPOSED:
        out = fn(x, w, b, *args)
        assert_close(out, ref, **TOL)
        assert_close(torch.autograd.grad(out, (x, w, b), grad), ref_grads, **TOL)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("fn", FORWARDS)
def test_string_padding(fn, padding):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 4, 3, dtype=torch.float64, requires_grad=True)  # even kernel: asymmetric "same"
    ref = F.conv2d(x, w, None, 1, padding, (2, 1), 2)
    out = fn(x, w, None, 1, padding, (2, 1), 2)
    assert_close(out, ref, **TOL)
    grad = torch.randn_like(ref)
    expected = torch.autograd.grad(ref, (x, w), grad)
    assert_close(torch.autograd.grad(out, (x, w), grad), expected, **TOL)
    assert_close(C.conv2d_backward(grad, x, w, 1, padding, (2, 1), 2)[:2], expected, **TOL)


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3},
    {"kernel_size": (2, 3), "stride": 2, "padding": (1, 0), "bias": False},
    {"kernel_size": 3, "padding": "same", "dilation": 2, "groups": 2},
    {"kernel_size": (1, 2), "padding": "valid", "stride": (1, 2)},
])
def test_module_loads_nn_conv2d_state_dict(kwargs):
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, **kwargs).double()
    ours = C.Conv2d(4, 6, **kwargs).double()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 4, 9, 10, dtype=torch.float64)
    assert_close(ours(x), ref(x), **TOL)
    assert_close(ours(x[0]), ref(x[0]), **TOL)  # unbatched input
    ours(x).square().sum().backward()
    ref(x).square().sum().backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, **TOL, msg=name)


def test_module_init_matches_torch_distribution():
    torch.manual_seed(1)
    ref = nn.Conv2d(16, 32, 3)
    torch.manual_seed(1)
    ours = C.Conv2d(16, 32, 3)
    assert_close(ours.weight, ref.weight, atol=0, rtol=0)  # same init order and bounds: identical draws
    assert_close(ours.bias, ref.bias, atol=0, rtol=0)


BAD_CONV = [  # (ours, torch's twin, what our message names): the same mistake given to both
    (lambda: C.Conv2d(2, 2, 3, stride=2, padding="same"), lambda: torch.nn.Conv2d(2, 2, 3, stride=2, padding="same"),
     "same"),
    (lambda: C.Conv2d(3, 4, 3, groups=2), lambda: torch.nn.Conv2d(3, 4, 3, groups=2), "groups"),
    (lambda: C.Conv2d(3, 4, 3, padding="full"), lambda: torch.nn.Conv2d(3, 4, 3, padding="full"), "padding"),
    (lambda: C.conv2d(torch.randn(1, 3, 4, 4), torch.randn(2, 2, 1, 1)),  # the 1x1 fast path checks too
     lambda: F.conv2d(torch.randn(1, 3, 4, 4), torch.randn(2, 2, 1, 1)), "channels"),
    (lambda: C.conv2d(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 3, 3)),
     lambda: F.conv2d(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 3, 3)), "larger"),
    (lambda: C.conv2d(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 3, 3), stride=2, padding="same"),
     lambda: F.conv2d(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 3, 3), stride=2, padding="same"), "same"),
]


@pytest.mark.parametrize("ours, ref, says", BAD_CONV, ids=["same-strided", "groups", "padding-name", "channels",
                                                            "kernel-too-large", "functional-same-strided"])
def test_bad_arguments_raise_what_torch_raises_with_one_clear_line(ours, ref, says):
    """The exception class of torch's twin (ValueError from the module's constructor, RuntimeError from the
    functional form), so `except` clauses written for torch work the same around ours."""
    with pytest.raises(Exception) as theirs:
        ref()
    with pytest.raises(theirs.type, match=says):
        ours()


@pytest.mark.parametrize("size", [(28, 28), (30, 33)])
@pytest.mark.parametrize("kernel, padding, dilation", [((3, 2), (1, 2), (2, 1)), ((1, 1), 0, 1)],
                         ids=["shifted", "pointwise"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv2d_dispatch_on_large_images(size, kernel, padding, dilation, with_bias):
    """conv2d switches to the shifted path at 28x28 and above (the bias entering its first GEMM), and to one GEMM
    for an unpadded 1x1 kernel: check those paths through the dispatcher too, gradients included."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, *kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True) if with_bias else None
    ref = F.conv2d(x, w, b, 1, padding, dilation)
    out = C.conv2d(x, w, b, 1, padding, dilation)
    assert_close(out, ref, **TOL)
    grad = torch.randn_like(ref)
    inputs = (x, w, b) if with_bias else (x, w)
    assert_close(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad), **TOL)


@pytest.mark.parametrize("size, path", [(56, "shifted"), (14, "shifted"), (7, "im2col")])
def test_forward_plan_and_the_path_not_taken(size, path):
    """A 3x3 'same' layer takes the shifted GEMMs while the padded grid is at most 1.4x the output (56 and 14 px),
    else im2col (7 px: 81 vs 49 pixels). The shifted path stays correct where it is not taken (the benchmark
    times it there to check the choice)."""
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 3, size, size, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64), None
    plan, shifted = C._forward_plan(x.shape, w.shape, 1, 1, 1, 1)
    assert plan == path and shifted is not None
    assert_close(C._conv2d_shifted_blocked(x, w, b, *shifted), F.conv2d(x, w, b, 1, 1), **TOL)
    assert C._forward_plan(x.shape, w.shape, 2, 1, 1, 1) == ("im2col", None)  # a stride rules the shifted path out
    assert C._forward_plan(x.shape, w[:, :, :1, :1].shape, 1, 0, 1, 1)[0] == "pointwise"
