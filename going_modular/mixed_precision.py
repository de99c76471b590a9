# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Mixed precision: run the forward pass in 16-bit floats where that is safe, with one code path.

`autocast(device, None)` is a do-nothing context, so the engine writes `with autocast(device, amp):`
whatever the setting. bf16 keeps float32's exponent range and needs no loss scaling; fp16 does,
so `grad_scaler` is only enabled for fp16 (disabled, a GradScaler passes values straight through).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

AMP_CHOICES = (None, "bf16", "fp16")


def check_amp(amp: str | None) -> None:
    """Refuse an amp value that does not exist, naming the ones that do."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r} is not one of {AMP_CHOICES}. Use None (float32), 'bf16' or 'fp16'.")


def autocast(device: torch.device, amp: str | None):
    """The one mixed-precision switch: a no-op context (amp=None), or autocast to bf16/fp16."""
    check_amp(amp)
    if amp is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def grad_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler:
    """A GradScaler that scales the loss only for fp16 (small fp16 gradients would round to zero)."""
    check_amp(amp)
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")
