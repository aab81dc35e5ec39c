"""`--amp auto` resolves to what pays on the machine; bad combinations are one-line errors."""

import pytest
import torch

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train import precision as P

CPU = torch.device("cpu")


@pytest.mark.parametrize("amx, expected", [(True, "bf16"), (False, "off")])
def test_auto_on_cpu_follows_amx(monkeypatch, amx, expected):
    monkeypatch.setattr(P, "cpu_has_amx", lambda: amx)
    assert P.resolve_amp("auto", CPU) == expected
    ctx = P.autocast_ctx(CPU, "auto")
    with ctx:
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == (torch.bfloat16 if amx else torch.float32)
    assert not P.make_grad_scaler(CPU, "auto").is_enabled()


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
    P.cpu_has_amx.cache_clear()
    try:
        assert P.cpu_has_amx()
        fake.write_text("processor : 0\nflags : fpu sse avx512f avx512_vnni\n")
        P.cpu_has_amx.cache_clear()
        assert not P.cpu_has_amx()
    finally:
        P.cpu_has_amx.cache_clear()
