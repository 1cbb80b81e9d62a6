"""The domain-agnostic training engine: device/AMP, DDP under torchrun, checkpoints with exact
resume, progress and metrics, val-based model selection, frozen-encoder embeddings.

Entry points: :func:`run_training`, :func:`run_embedding` (what ``sciclr train``/``embed``
call) and :func:`embed`.
"""

from sciclr.train.config import TrainConfig
from sciclr.train.device import resolve_device
from sciclr.train.embed import embed
from sciclr.train.run import run_embedding, run_training

__all__ = ["TrainConfig", "embed", "resolve_device", "run_embedding", "run_training"]
