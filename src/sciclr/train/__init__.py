"""The domain-agnostic training engine: device/AMP, DDP under torchrun, checkpoints with exact
resume, progress and metrics, val-based model selection, frozen-encoder embeddings.

Entry points: :func:`run_training`, :func:`run_embedding` (what ``sciclr train``/``embed``
call) and :func:`embed`. They load on first use (PEP 562): the CLI imports
:mod:`sciclr.train.signals` for its exit codes, and an analysis verb must not pay for torch.
"""

from __future__ import annotations

from sciclr.lazy import lazy_exports

#: public name -> the submodule that defines it
_EXPORTS = {
    "TrainConfig": "config",
    "resolve_device": "device",
    "embed": "embed",
    "run_embedding": "run",
    "run_training": "run",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
