"""The ``train:`` section of a data set's config, as one typed object with defaults.

The workflow schema validates the same keys; this module repeats the defaults so that the engine
also runs from a notebook or a test with a partial config, and rejects keys it does not know (a
misspelt key silently ignored would train something else than the user asked for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sciclr.errors import SciclrError

__all__ = ["AMP_CHOICES", "LOSS_MODES", "TrainConfig"]

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
LOSS_MODES = ("all", "cross_view")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters. Field docs are the config reference."""

    epochs: int = 10  #: passes over the train split (0: checkpoint the initial model)
    batch_size: int = 256  #: global batch (split across DDP ranks); clamped to the train size
    lr: float = 1e-3  #: peak AdamW learning rate (after warm-up)
    weight_decay: float = 1e-4  #: AdamW decay on weight matrices (not on biases, norms, tau)
    warmup_epochs: float = 1.0  #: linear warm-up length, then cosine decay to 0 (per step)
    temperature: float = 0.1  #: InfoNCE temperature (initial value when learned)
    learn_temperature: bool = False  #: learn log(tau) with the model
    loss_mode: str = "all"  #: "all" (SupCon L_out / NT-Xent) or "cross_view" (CLIP/CMC)
    queue_size: int = 0  #: FIFO queue of extra negatives (0 = off)
    tau_plus: float = 0.0  #: debiased-negatives class prior (Chuang et al. 2020; 0 = off)
    beta: float = 0.0  #: hard-negative concentration (Robinson et al. 2021; 0 = off)
    chunk_size: int | None = None  #: block size of the memory-lean loss path (None = auto)
    seed: int = 0  #: seeds initialisation, batch order, views and dropout
    grad_clip: float | None = 1.0  #: max global gradient norm (None or 0 = no clipping)
    amp: str = "auto"  #: "auto" (bf16 on CUDA, off on CPU), "bf16", "fp16" (GradScaler), "off"
    compile: bool = False  #: torch.compile the model
    ddp_procs: int | str = "auto"  #: processes; "auto" = one per visible GPU on CUDA, 1 on CPU
    log_every: int = 10  #: steps between log lines when the output is not a terminal
    eval_every: int = 1  #: epochs between val evaluations (0 = never)
    select_on_val: bool = True  #: keep the best epoch on val as the final checkpoint
    tensorboard: bool = False  #: also log to out_dir/tensorboard (needs the tensorboard package)
    max_steps: int | None = None  #: stop after this many optimizer steps (None = all epochs)
    profile_steps: int = 10  #: steps profiled for the data-path fraction (0 = off)
    embed_batch_size: int = 512  #: batch size for embedding and val evaluation

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> TrainConfig:
        """Build from ``cfg["train"]``; unknown keys and wrong types raise :class:`SciclrError`."""
        section = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise SciclrError(
                f"config train: unknown key(s) {unknown}; expected some of {sorted(known)}"
            )
        out = cls(**section)
        out._validate()
        return out

    def _validate(self) -> None:
        def bad(key: str, expected: str) -> SciclrError:
            return SciclrError(
                f"config train.{key}: got {getattr(self, key)!r}, expected {expected}"
            )

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        for key in ("batch_size", "log_every", "embed_batch_size"):
            if not is_int(getattr(self, key)) or getattr(self, key) < 1:
                raise bad(key, "an integer >= 1")
        if self.batch_size < 2:
            raise bad("batch_size", "an integer >= 2 (contrastive learning needs negatives)")
        for key in ("epochs", "queue_size", "eval_every", "profile_steps", "seed"):
            if not is_int(getattr(self, key)) or getattr(self, key) < 0:
                raise bad(key, "an integer >= 0")
        for key in ("lr", "temperature"):
            if not is_num(getattr(self, key)) or getattr(self, key) <= 0:
                raise bad(key, "a number > 0")
        for key in ("weight_decay", "warmup_epochs", "tau_plus", "beta"):
            if not is_num(getattr(self, key)) or getattr(self, key) < 0:
                raise bad(key, "a number >= 0")
        for key in ("learn_temperature", "compile", "select_on_val", "tensorboard"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "true or false")
        if self.loss_mode not in LOSS_MODES:
            raise bad("loss_mode", f"one of {list(LOSS_MODES)}")
        if self.amp not in AMP_CHOICES:
            raise bad("amp", f"one of {list(AMP_CHOICES)}")
        if self.grad_clip is not None and (not is_num(self.grad_clip) or self.grad_clip < 0):
            raise bad("grad_clip", "a number >= 0 or null")
        if self.max_steps is not None and (not is_int(self.max_steps) or self.max_steps < 1):
            raise bad("max_steps", "an integer >= 1 or null")
        if self.chunk_size is not None and (not is_int(self.chunk_size) or self.chunk_size < 1):
            raise bad("chunk_size", "an integer >= 1 or null")
        if not (self.ddp_procs == "auto" or (is_int(self.ddp_procs) and self.ddp_procs >= 1)):
            raise bad("ddp_procs", '"auto" or an integer >= 1')

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
