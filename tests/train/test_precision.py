"""`--amp auto` resolves to what pays on the machine; bad combinations are one-line errors."""

import pytest
import torch

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train import precision as P

CPU = torch.device("cpu")


@pytest.mark.parametrize("fast, expected", [(True, "bf16"), (False, "off")])
def test_auto_on_cpu_follows_measured_bf16_speed(monkeypatch, fast, expected):
    monkeypatch.setattr(P, "cpu_bf16_is_fast", lambda: fast)
    assert P.resolve_amp("auto", CPU) == expected
    ctx = P.autocast_ctx(CPU, "auto")
    with ctx:
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == (torch.bfloat16 if fast else torch.float32)
    assert not P.make_grad_scaler(CPU, "auto").is_enabled()


def test_bf16_speed_is_measured_only_where_the_flags_promise_bf16_units(monkeypatch):
    P.cpu_bf16_is_fast.cache_clear()
    monkeypatch.setattr(P, "cpu_bf16_flags", lambda: ())
    try:
        assert P.cpu_bf16_is_fast() is False  # no units: no timing, no
        P.cpu_bf16_is_fast.cache_clear()
        monkeypatch.setattr(P, "cpu_bf16_flags", lambda: ("avx512_bf16",))
        fast = P.cpu_bf16_is_fast(size=64, repeats=2)
        assert isinstance(fast, bool)
    finally:
        P.cpu_bf16_is_fast.cache_clear()


def test_explicit_choices_and_errors():
    assert P.resolve_amp("bf16", CPU) == "bf16"
    assert P.resolve_amp("off", CPU) == "off"
    with pytest.raises(PiaError, match="needs a CUDA device"):
        P.resolve_amp("fp16", CPU)
    with pytest.raises(PiaError, match="unknown --amp"):
        P.resolve_amp("fp8", CPU)


def test_cpu_flags_are_read_from_proc_cpuinfo(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\nflags : fpu sse avx512f amx_tile amx_bf16 amx_int8\n")
    real_path = P.Path
    monkeypatch.setattr(P, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    P.cpu_bf16_flags.cache_clear()
    try:
        assert P.cpu_bf16_flags() == ("amx_bf16",)
        fake.write_text("processor : 0\nflags : fpu sse avx512f avx512_vnni avx512_bf16\n")
        P.cpu_bf16_flags.cache_clear()
        assert P.cpu_bf16_flags() == ("avx512_bf16",)
        fake.write_text("processor : 0\nflags : fpu sse avx512f avx512_vnni\n")
        P.cpu_bf16_flags.cache_clear()
        assert P.cpu_bf16_flags() == ()
    finally:
        P.cpu_bf16_flags.cache_clear()
