"""Mixed precision: bf16 autocast on CPU (AMX makes it fast) and CUDA; fp16 + GradScaler on CUDA."""

from __future__ import annotations

import contextlib

import torch

from pytorch_in_action.errors import PiaError

AMP_CHOICES = ("off", "bf16", "fp16")


def check_amp(amp: str, device: torch.device) -> None:
    if amp not in AMP_CHOICES:
        raise PiaError(f"unknown --amp {amp!r}; choose from {', '.join(AMP_CHOICES)}")
    if amp == "fp16" and device.type != "cuda":
        raise PiaError("--amp fp16 needs a CUDA device; on CPU use --amp bf16")


def autocast_ctx(device: torch.device, amp: str = "off") -> contextlib.AbstractContextManager:
    """The autocast context for `amp` ("off" gives a no-op context)."""
    check_amp(amp, device)
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, amp: str = "off") -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 (bf16 has fp32's range and needs no loss scaling)."""
    return torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))
