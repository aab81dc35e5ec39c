"""Mixed precision: bf16 autocast on CPU (fast where the CPU has bf16 matrix units) and CUDA; fp16 + GradScaler on
CUDA.

`auto` picks what pays on the machine at hand: bf16 on CPUs whose bf16 matrix products are measured to be faster
than float32, bf16 on CUDA devices that support it, fp16 on older ones. On a CPU the flags say whether bf16
units exist at all (AMX tiles, or AVX512_BF16 dot products), and a short timing decides: measured, on two 2-core
machines, a 4096 x 384 x 1536 product ran at 245 GFLOP/s in float32 and 57 in bf16 on a Xeon whose virtual
machine hides AMX, but at 146 and 768 on an AMD EPYC with AVX512_BF16.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from pytorch_in_action.errors import PiaError
from pytorch_in_action.timing import interleaved_medians

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU flags (Linux) that promise bf16 matrix instructions: `amx_bf16` and/or `avx512_bf16`."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return ()
    flags = next((line.split() for line in text.splitlines() if line.startswith("flags")), [])
    return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)


@functools.cache
def cpu_bf16_is_fast(size: int = 512, repeats: int = 5) -> bool:
    """True when bf16 matrix products beat float32 ones by a clear margin on this CPU (measured once per process,
    and only where the flags promise bf16 units: without them the answer is known to be no)."""
    if not cpu_bf16_flags():
        return False
    a = torch.randn(size, size)
    a16 = a.bfloat16()
    medians = interleaved_medians({"fp32": lambda: a @ a, "bf16": lambda: a16 @ a16}, repeats + 1)
    return medians["bf16"] < 0.8 * medians["fp32"]


def resolve_amp(amp: str, device: torch.device) -> str:
    """The concrete choice ("off", "bf16" or "fp16") for `amp` on `device`; checks the combination."""
    if amp not in AMP_CHOICES:
        raise PiaError(f"unknown --amp {amp!r}; choose from {', '.join(AMP_CHOICES)}")
    if amp == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_bf16_is_fast() else "off"
    if amp == "fp16" and device.type != "cuda":
        raise PiaError("--amp fp16 needs a CUDA device; on CPU use --amp bf16")
    return amp


def autocast_ctx(device: torch.device, amp: str = "off") -> contextlib.AbstractContextManager:
    """The autocast context for `amp` ("off", or "auto" resolving to it, gives a no-op context)."""
    amp = resolve_amp(amp, device)
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, amp: str = "off") -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 (bf16 has fp32's range and needs no loss scaling)."""
    return torch.amp.GradScaler(device.type, enabled=(resolve_amp(amp, device) == "fp16"))
