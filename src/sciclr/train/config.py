"""The ``train:`` section of a data set's config as one typed, immutable object.

Keys, types, ranges and defaults live in the schema (``src/sciclr/schemas/config.schema.yaml``,
``$defs/train``); :func:`sciclr.config.dataset_params` fills and checks them before a section
gets here, so this class only gives the values names and types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (their meaning and defaults: the schema's ``$defs/train``)."""

    epochs: int  #: passes over the train split (0: checkpoint the initial model)
    batch_size: int  #: global batch (split across DDP ranks); clamped to the train size
    lr: float  #: peak AdamW learning rate (after warm-up)
    weight_decay: float  #: AdamW decay on weight matrices (not on biases, norms, tau)
    warmup_epochs: float  #: linear warm-up length, then cosine decay to 0 (per step)
    temperature: float  #: InfoNCE temperature (initial value when learned)
    learn_temperature: bool  #: learn log(tau) with the model
    loss_mode: str  #: "all" (SupCon L_out / NT-Xent) or "cross_view" (CLIP/CMC)
    queue_size: int  #: FIFO queue of extra negatives (0 = off)
    tau_plus: float  #: debiased-negatives class prior (Chuang et al. 2020; 0 = off)
    beta: float  #: hard-negative concentration (Robinson et al. 2021; 0 = off)
    chunk_size: int | None  #: block size of the memory-lean loss path (None = auto)
    seed: int  #: seeds initialisation, batch order, views and dropout
    grad_clip: float | None  #: max global gradient norm (None or 0 = no clipping)
    amp: str  #: "auto" (bf16 on CUDA, off on CPU), "bf16", "fp16" (GradScaler), "off"
    compile: bool  #: torch.compile the model
    ddp_procs: int | str  #: processes; "auto" = one per visible GPU on CUDA, 1 on CPU
    log_every: int  #: steps between log lines when the output is not a terminal
    eval_every: int  #: epochs between val evaluations (0 = never)
    eval_max_items: int  #: train items the val k-NN check compares against (seeded subsample)
    eval_max_val: int  #: val items the val k-NN check scores (seeded subsample)
    select_on_val: bool  #: keep the best epoch on val as the final checkpoint
    tensorboard: bool  #: also log to out_dir/tensorboard (needs the tensorboard package)
    max_steps: int | None  #: stop after this many optimizer steps (None = all epochs)
    profile_steps: int  #: steps profiled for the data-path fraction (0 = off)
    embed_batch_size: int  #: batch size for embedding and val evaluation

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> TrainConfig:
        """From a filled ``train:`` section (:func:`sciclr.config.dataset_params`)."""
        return cls(**section)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
