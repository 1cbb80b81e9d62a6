"""Device and mixed-precision choice.

bf16 autocast runs the encoders in bfloat16 on CUDA; the loss is always computed in float32
outside autocast (bf16 logits give percent-level gradient errors, see FACTS.md). fp16 needs a
GradScaler; bf16 has float32's exponent range and does not.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import torch

from sciclr.errors import SciclrError

__all__ = ["autocast", "resolve_amp", "resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU. Under torchrun, CUDA means ``cuda:LOCAL_RANK``."""
    name = str(name).lower()
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise SciclrError(f"config device: got {name!r}, expected auto, cpu or cuda")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SciclrError(
            f"config device: {name!r} requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); install a CUDA build of torch or use device: auto"
        )
    if name.startswith("cuda:"):
        return torch.device(name)
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for float32 throughout."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        raise SciclrError(f"config train.amp: {amp!r} needs a CUDA device; use auto or off on CPU")
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16  # auto on a GPU without bf16 (pre-Ampere)


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast context for the model forward; a no-op when ``dtype`` is None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
