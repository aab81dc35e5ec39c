"""Few-row products through packed weights and cache blocking compute `F.linear`: same outputs (and gradients
where autograd runs), for every row count and backend, with the model's `nn.Linear` layers left as they are."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from pytorch_in_action.fast import linear as L


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


class Packed:
    """An `nn.Linear` and its `PackedLinears`: `self(x)` is the layer's product through the packed path."""

    def __init__(self, in_features: int, out_features: int) -> None:
        self.module = torch.nn.Linear(in_features, out_features)
        self.linears = L.PackedLinears(self.module)
        self.weight, self.bias = self.module.weight, self.module.bias
        self._packed = self.linears.packs[self.module]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.linears(self.module, x)


def test_packed_linears_cover_every_linear_and_leave_the_model_untouched():
    model = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    linears = L.PackedLinears(model)
    assert set(linears.packs) == {model[0], model[2]}
    x = torch.randn(4, 32)
    with torch.no_grad():
        assert_close(linears(model[2], linears(model[0], x).relu()), model(x), rtol=1e-5, atol=1e-5)
    assert all(type(m) is not L.PackedWeight for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


needs_mkl = pytest.mark.skipif(not L.packed_gemm_available(), reason="this torch build has no MKL packed GEMM")


@needs_mkl
def test_packed_path_equals_f_linear_and_packs_only_repeated_row_counts():
    torch.manual_seed(0)
    lin = Packed(96, 200)
    with torch.no_grad():
        lin(torch.randn(2, 5, 96))  # a prompt's prefill, 10 rows, once: no packing
        assert lin._packed.key is None
        xs = [torch.randn(2, 1, 96) for _ in range(3)]  # the decoding loop: 2 rows, again and again
        outs = [lin(x) for x in xs]
    assert lin._packed.key is not None and lin._packed.key[0] == 2
    for x, out in zip(xs, outs):
        assert_close(out, F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        x = torch.randn(10, 96)
        assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=0, atol=0)  # a one-off: the portable path
    assert lin._packed.key[0] == 2


@needs_mkl
def test_packed_copy_follows_in_place_weight_updates():
    lin = Packed(32, 48)
    x = torch.randn(4, 32)
    with torch.no_grad():
        lin(x), lin(x)
        key = lin._packed.key
        lin.weight.mul_(2)  # e.g. an optimizer step
        out = lin(x)
    assert lin._packed.key != key
    assert_close(out, F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)
    lin.linears.release()
    assert lin._packed.packed is None


@needs_mkl
def test_packed_path_stays_out_of_training_and_autocast():
    lin = Packed(32, 48)
    x = torch.randn(4, 32)
    for _ in range(3):
        out = lin(x)  # gradients wanted: ordinary autograd path
    assert lin._packed.key is None and out.requires_grad
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):
            out = lin(x)
    assert lin._packed.key is None and out.dtype == torch.bfloat16
    assert_close(out.float(), F.linear(x, lin.weight, lin.bias), rtol=0.02, atol=0.02)


@needs_mkl
def test_frozen_packed_weight_accepts_inference_tensors():
    with torch.inference_mode():
        w = torch.randn(40, 16)  # an inference tensor: no version counter
        x = torch.randn(3, 16)
        watched, frozen = L.PackedWeight(), L.PackedWeight(frozen=True)
        for _ in range(2):
            assert_close(watched.linear(x, w), F.linear(x, w), rtol=0, atol=0)  # cannot watch it: portable path
        assert watched.key is None
        assert_close(frozen.linear(x, w), F.linear(x, w), rtol=0, atol=0)  # first sight of 3 rows: not packed
        assert frozen.key is None
        assert_close(frozen.linear(x, w), F.linear(x, w), rtol=1e-5, atol=1e-5)
        assert frozen.key is not None


@pytest.mark.parametrize("backend", L.available_backends())
@pytest.mark.parametrize("rows", [1, 3, 8])
@pytest.mark.parametrize("bias", [True, False])
def test_every_backend_computes_f_linear(backend, rows, bias):
    torch.manual_seed(rows)
    w, b = torch.randn(150, 40), (torch.randn(150) if bias else None)
    x = torch.randn(rows, 1, 40)  # leading dimensions count as rows
    with torch.no_grad():
        out = L.run(backend, x, w, L.pack(backend, w, rows), b, rows)
    assert out.shape == (rows, 1, 150)
    assert_close(out, F.linear(x, w, b), rtol=1e-5, atol=1e-5)


def test_fastest_backend_is_measured_once_per_shape(monkeypatch):
    monkeypatch.delenv("PIA_LINEAR_BACKEND", raising=False)
    monkeypatch.setattr(L, "_chosen", {})
    calls = []
    real_run = L.run
    monkeypatch.setattr(L, "run", lambda backend, *a: calls.append(backend) or real_run(backend, *a))
    w, x = torch.randn(70, 24), torch.randn(2, 24)
    with torch.no_grad():
        name, _ = L.fastest_backend(x, w, None)
        assert name in L.available_backends()
        assert sorted(set(calls)) == sorted(L.available_backends())  # every kernel was timed
        assert len(calls) == L.TUNE_ROUNDS * len(L.available_backends())
        calls.clear()
        assert L.fastest_backend(x, w, None)[0] == name and not calls  # remembered, not measured again
        L.fastest_backend(torch.randn(3, 24), w, None)  # another row count: measured
        assert calls


def test_backend_can_be_forced_and_a_bad_name_is_one_line(monkeypatch):
    monkeypatch.setattr(L, "_chosen", {})
    monkeypatch.setenv("PIA_LINEAR_BACKEND", "blocked")
    lin = Packed(24, 70)
    x = torch.randn(4, 24)
    with torch.no_grad():
        lin(x), lin(x)
    assert lin._packed.backend == "blocked" and not L._chosen
    monkeypatch.setenv("PIA_LINEAR_BACKEND", "cublas")
    lin = Packed(24, 70)
    with torch.no_grad(), pytest.raises(ValueError, match="PIA_LINEAR_BACKEND='cublas': choose one of plain"):
        lin(x), lin(x)
