"""The cache-blocked Linear is nn.Linear: same outputs, gradients and state_dict, for every row count."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from pytorch_in_action.layers import linear as L


@pytest.mark.parametrize("rows", [1, 2, 8, 64, 65])
@pytest.mark.parametrize("bias", [True, False])
def test_blocked_linear_equals_f_linear(monkeypatch, rows, bias):
    monkeypatch.setattr(L, "BLOCK_BYTES", 40 * 24 * 8)  # 40 output rows per block: 3 blocks, the last one short
    torch.manual_seed(rows)
    x = torch.randn(rows, 24, dtype=torch.float64, requires_grad=True)
    w = torch.randn(100, 24, dtype=torch.float64, requires_grad=True)
    b = torch.randn(100, dtype=torch.float64, requires_grad=True) if bias else None
    ref = F.linear(x, w, b)
    out = L.blocked_linear(x, w, b)
    assert_close(out, ref, atol=1e-12, rtol=1e-12)
    grad = torch.randn_like(ref)
    inputs = (x, w) + ((b,) if bias else ())
    assert_close(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad),
                 atol=1e-12, rtol=1e-12)


def test_leading_dimensions_count_as_rows(monkeypatch):
    monkeypatch.setattr(L, "BLOCK_BYTES", 16 * 8 * 4)
    x = torch.randn(2, 3, 8)  # 6 rows in all: blocked
    w, b = torch.randn(50, 8), torch.randn(50)
    assert_close(L.blocked_linear(x, w, b), F.linear(x, w, b))


def test_module_loads_nn_linear_state_dict():
    ref = torch.nn.Linear(32, 48)
    ours = L.Linear(32, 48)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 32)
    assert_close(ours(x), ref(x))
