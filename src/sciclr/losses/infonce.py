r"""Multi-view InfoNCE: the functional core :func:`info_nce` and the module :class:`InfoNCE`.

Embeddings ``z`` have shape ``(V, N, d)``: ``V ≥ 2`` views of ``N`` instances. With
``normalize=True`` they are L2-normalised here (``ẑ = z / ‖z‖``, gradient through the
normalisation); ``s(x, y) = ẑ_x · ẑ_y`` and logits are ``s / τ``.

Conventions
-----------
Anchor ``a = (v, i)``; its positives ``P(a) = {(u, i) : u ≠ v}`` (``V − 1`` of them).

``mode="all"`` (SupCon ``L_out`` with instance labels, Khosla et al. 2020; for ``V = 2`` exactly
SimCLR's NT-Xent, Chen et al. 2020). The denominator runs over all ``V·N − 1`` other embeddings
``A(a)``::

    L = 1/(V·N) Σ_a  −1/(V−1) Σ_{p ∈ P(a)}  log( exp(s_ap/τ) / Σ_{c ∈ A(a)} exp(s_ac/τ) )

``mode="cross_view"`` (CLIP, Radford et al. 2021, for ``V = 2``; CMC "full graph", Tian et al.
2020, for ``V > 2``). Mean over ordered view pairs ``(a, b)``, ``a ≠ b``, of the cross-entropy of
``Z_a Z_bᵀ / τ`` against ``arange(N)``; each anchor sees only the other view's ``N − 1``
negatives::

    L = 1/(V(V−1)) Σ_{a≠b} 1/N Σ_i −log( exp(s(z_ai, z_bi)/τ) / Σ_j exp(s(z_ai, z_bj)/τ) )

For ``V = 2`` this is ``(CE(Z_1 Z_2ᵀ/τ) + CE(Z_2 Z_1ᵀ/τ)) / 2``. For ``V > 2`` the two modes give
different numbers (so does SupCon's ``L_in``): say which one a result used.

Every term is evaluated as ``softplus(L_ap − s_ap/τ)`` where ``L_ap`` is the log-sum-exp of the
negatives and the other positives. That is ``−log softmax`` rewritten so that a tiny loss
(≈ 1e-5) keeps float32 accuracy; masks are −inf.

Precision. Logits, log-sum-exp and the loss are computed in :func:`compute_dtype` of the input:
float32, or the input's dtype when it is wider. bf16/fp16 embeddings (and bf16 autocast) give a
float32 loss, float64 embeddings a float64 loss through every path (dense rows, debiasing and
hard negatives, ``cross_view`` pairs, chunked blocks, queue, diagnostics), so
``torch.autograd.gradcheck`` applies to the loss as it runs.

Extra negatives. A FIFO queue (MoCo, He et al. 2020) adds ``q`` detached keys to every
denominator; queue entries of the anchor's own instance (same dataset ``index``) are masked.
Under ``torch.distributed`` the keys are the global batch gathered with gradients
(:mod:`sciclr.losses.distributed`); each rank averages over its own anchors, so with DDP's
gradient averaging the update equals the single-process global-batch update (the loss is not
scaled by the world size). ``tau_plus`` replaces the negative mass by the debiased estimate of
Chuang et al. 2020 and ``beta`` by the importance-weighted hard-negative mass of Robinson et al.
2021 (both in log-space, see :mod:`sciclr.losses.rows`).

Implementation
--------------
Every mode is a set of softmax rows (:mod:`sciclr.losses.rows`: one logits buffer, softmax in
place, two products in backward). ``cross_view`` on one process without a queue reads one product
per view pair by rows and by columns (:mod:`sciclr.losses.pairs`). Above ``CHUNK_AUTO_BYTES`` of
logits (or with ``chunk_size``) rows are processed in blocks and recomputed in backward
(:mod:`sciclr.losses.chunked`), with the same values. Under DDP every rank must call the loss
(it gathers the keys collectively).

Geometry of the gradient
------------------------
For one query ``q`` with keys ``k_c`` (target ``t``) and ``p = softmax(q·k/τ)``,
``∇_q L = (Σ_c p_c k_c − k_t) / τ``: the query is pulled toward its positive and pushed away from
the softmax-weighted mean of all keys. With normalisation the gradient reaching the unnormalised
vector is ``∇_z L = (I − ẑ ẑᵀ) ∇_ẑ L / ‖z‖``: purely tangential, its radial part is exactly zero.
The loss therefore exerts no "scaling force": it cannot be lowered by growing norms (which would
sharpen the softmax like a lower temperature, as happens without normalisation), only by moving
directions on the sphere, at a speed ``1/‖z‖``; sharpness is set by τ alone. Gradient steps
orthogonal to ``z`` still lengthen it at second order (``‖z − ηg‖² = ‖z‖² + η²‖g‖²``), so norms
drift upward and effective step sizes shrink slowly.

With all positives at similarity ``α`` and ``K`` negatives at ``β`` the loss is
``softplus((β − α)/τ + ln K)`` ≈ ``max(0, β + τ ln K − α)/τ``: a hinge with effective margin
``β + τ ln K``; ``ln K − L`` is the InfoNCE lower bound on the mutual information between views
(van den Oord et al. 2018), which cannot exceed ``ln K``.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from sciclr.errors import SciclrError
from sciclr.losses import pairs
from sciclr.losses.chunked import chunked_row_terms
from sciclr.losses.diagnostics import InfoNCEDiagnostics, summarize
from sciclr.losses.distributed import gather_no_grad, gather_with_grad, world
from sciclr.losses.queue import NegativeQueue
from sciclr.losses.rows import RowStats, compute_dtype, row_terms

MODES = ("all", "cross_view")
#: dense logits above this many bytes switch to the chunked path when ``chunk_size`` is None
CHUNK_AUTO_BYTES = 2 * 1024**3
#: target size of one block's logits on the chunked path
CHUNK_BLOCK_BYTES = 256 * 1024**2


def _structure(
    mode: str, v: int, n: int, n_global: int, offset: int, device: torch.device
) -> tuple[list[int], list[int], torch.Tensor, torch.Tensor | None]:
    """Row/key layout of one mode: anchor views, key views, positive and excluded columns."""
    i = torch.arange(n, device=device) + offset
    if mode == "all":
        views = torch.arange(v, device=device)
        other = torch.stack([torch.cat([views[:u], views[u + 1 :]]) for u in range(v)])  # (V, V-1)
        pos = (other[:, None, :] * n_global + i[None, :, None]).reshape(1, v * n, v - 1)
        excl = (views[:, None] * n_global + i[None, :]).reshape(1, v * n, 1)
        return list(range(v)), list(range(v)), pos, excl
    pairs = [(a, b) for a in range(v) for b in range(v) if a != b]
    pos = i.view(1, n, 1).expand(len(pairs), n, 1).contiguous()
    return [a for a, _ in pairs], [b for _, b in pairs], pos, None


def info_nce(
    z: torch.Tensor,
    temperature: float | torch.Tensor = 0.1,
    mode: str = "all",
    normalize: bool = True,
    *,
    queue: tuple[torch.Tensor, torch.Tensor] | None = None,
    index: torch.Tensor | None = None,
    tau_plus: float = 0.0,
    beta: float = 0.0,
    chunk_size: int | None = None,
    distributed: bool = True,
    return_diagnostics: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, InfoNCEDiagnostics]:
    """Mean multi-view InfoNCE loss of ``z (V, N, d)`` (conventions in the module docstring).

    Args:
        z: embeddings, ``V ≥ 2`` views of the same ``N`` instances in the same order.
        temperature: τ > 0 (float or scalar tensor; a tensor receives a gradient).
        mode: ``"all"`` (NT-Xent / SupCon L_out) or ``"cross_view"`` (CLIP / CMC full graph).
        normalize: L2-normalise inside (gradient through the normalisation).
        queue: extra negatives ``(keys (q, d), ids (q,))``, detached; ids −1 when unknown.
        index: dataset indices ``(N,)`` of the instances, to mask same-instance queue entries.
        tau_plus: class prior of Chuang et al. 2020 (0 = off, must be < 1).
        beta: hard-negative concentration of Robinson et al. 2021 (0 = off).
        chunk_size: anchors per block of the memory-lean path; ``None`` = automatic above
            ``CHUNK_AUTO_BYTES`` of logits, ``0`` = never.
        distributed: use global-batch keys when ``torch.distributed`` runs with > 1 rank.
        return_diagnostics: also return an :class:`InfoNCEDiagnostics`.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 3:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise SciclrError(f"info_nce: embeddings must have shape (V, N, d), got {shape}")
    v, n, d = z.shape
    if v < 2:
        raise SciclrError(
            f"info_nce: every anchor needs a positive, but z has V={v} view(s); give V >= 2 views"
        )
    if mode not in MODES:
        raise SciclrError(f"info_nce: mode must be one of {MODES}, got {mode!r}")
    if not 0.0 <= tau_plus < 1.0 or beta < 0:
        raise SciclrError(f"info_nce: need 0 <= tau_plus < 1 and beta >= 0, got {tau_plus}, {beta}")
    tau_value = (
        float(temperature.detach()) if isinstance(temperature, torch.Tensor) else temperature
    )
    if not tau_value > 0:
        raise SciclrError(f"info_nce: temperature must be > 0, got {tau_value}")
    cdt = compute_dtype(z.dtype)
    # a plain number stays a Python float (fewer ops); a tensor τ receives a gradient
    if isinstance(temperature, torch.Tensor):
        inv_tau: float | torch.Tensor = 1.0 / temperature.to(cdt)
    else:
        inv_tau = 1.0 / tau_value
    stats_wanted = bool(return_diagnostics)

    with torch.autocast(device_type=z.device.type, enabled=False):
        zf = z.to(cdt)
        w, _ = world() if distributed else (1, 0)
        qk, qmask = _queue_parts(queue, index, mode, v, n, d, z.device, cdt)
        plain = w == 1 and qk is None and tau_plus == 0 and beta == 0
        pair_count = v * (v - 1) // 2
        if (
            mode == "cross_view"
            and plain
            and n > 1
            and not _block(chunk_size, pair_count, n, n, zf.element_size())
        ):
            # one product per unordered view pair, read by rows and by columns
            bound = 1.0 if normalize else float(zf.detach().norm(dim=-1).max()) ** 2
            if pairs.usable(bound / tau_value, n):
                terms, stats = pairs.pair_terms(zf, inv_tau, normalize, stats_wanted)
                return _finish(terms.mean(), stats, tau_value, zf, normalize, return_diagnostics)
        zn = F.normalize(zf, dim=-1) if normalize else zf
        keys, offset = gather_with_grad(zn, dim=1) if w > 1 else (zn, 0)
        n_global = keys.shape[1]
        n_neg = (v * n_global - v if mode == "all" else n_global - 1) + (
            0 if qk is None else len(qk)
        )
        if n_neg < 1:
            raise SciclrError(
                f"info_nce: no negatives (N={n_global} instance(s), no queue); "
                "give a batch of at least 2 instances"
            )
        rows = zn * inv_tau
        a_views, k_views, pos, excl = _structure(mode, v, n, n_global, offset, z.device)
        if mode == "all":
            R = rows.reshape(1, v * n, d)
            K = keys.reshape(1, v * n_global, d)
        else:
            R = rows[a_views]
            K = keys[k_views]
        if qk is not None:
            K = torch.cat([K, qk.expand(K.shape[0], -1, -1)], dim=1)
        # bounds of |logit|: the debiased mass's floor is the smallest logit (−1/τ on the sphere),
        # and small bounds let the kernel take exponentials without a shift
        row_norm = 1.0 if normalize else float(zf.detach().norm(dim=-1).max())
        key_norm = 1.0 if normalize else float(keys.detach().norm(dim=-1).max())
        if qk is not None:
            key_norm = max(key_norm, float(qk.norm(dim=-1).max()))
        max_logit = row_norm * key_norm / tau_value
        fn = functools.partial(
            row_terms,
            tau_plus=float(tau_plus),
            beta=float(beta),
            min_logit=-max_logit,
            stats=stats_wanted,
            max_logit=max_logit,
        )
        block = _block(chunk_size, R.shape[0], R.shape[1], K.shape[1], R.element_size())
        if block:
            terms, stats = chunked_row_terms(fn, block, R, K, pos, excl, qmask)
        else:
            terms, stats = fn(R, K, pos, excl, qmask)
        return _finish(terms.mean(), stats, tau_value, zn, False, return_diagnostics)


def _finish(
    loss: torch.Tensor,
    stats: RowStats | None,
    tau: float,
    z: torch.Tensor,
    normalize: bool,
    diagnostics: bool,
) -> torch.Tensor | tuple[torch.Tensor, InfoNCEDiagnostics]:
    if not diagnostics or stats is None:
        return loss
    zn = F.normalize(z.detach(), dim=-1) if normalize else z.detach()
    return loss, summarize(loss, stats, tau, zn)


def _block(chunk_size: int | None, b: int, m: int, c: int, itemsize: int = 4) -> int:
    """Rows per block, or 0 for the dense path (``itemsize``: bytes per logit, 8 in float64)."""
    if chunk_size is None:
        if itemsize * b * m * c <= CHUNK_AUTO_BYTES:
            return 0
        return max(1, CHUNK_BLOCK_BYTES // (itemsize * b * c))
    if chunk_size < 0:
        raise SciclrError(f"info_nce: chunk_size must be >= 0 or None, got {chunk_size}")
    return int(chunk_size)


def _queue_parts(
    queue: tuple[torch.Tensor, torch.Tensor] | None,
    index: torch.Tensor | None,
    mode: str,
    v: int,
    n: int,
    d: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Queue keys (in the loss's compute ``dtype``) and the mask of same-instance queue entries
    per anchor row."""
    if queue is None or len(queue[0]) == 0:
        return None, None
    qk, qids = queue
    if qk.shape[-1] != d:
        raise SciclrError(f"info_nce: queue keys have width {qk.shape[-1]}, embeddings {d}")
    qk = qk.detach().to(device, dtype)
    if index is None:
        return qk, None
    index = index.to(device).long().view(-1)
    if index.numel() != n:
        raise SciclrError(f"info_nce: index has {index.numel()} entries for N={n} instances")
    own = index[:, None] == qids.to(device)[None, :]  # (N, q)
    if not bool(own.any()):
        return qk, None
    if mode == "all":
        own = own.repeat(v, 1)
    return qk, own.unsqueeze(0)


class InfoNCE(nn.Module):
    """Multi-view InfoNCE loss with optional learnable temperature and queue of negatives.

    Args:
        temperature: initial (or fixed) τ.
        learnable: learn ``log τ``; τ is clamped to ``min_temperature`` (1/τ ≤ 100 by default,
            as CLIP's logit scale).
        mode, normalize, tau_plus, beta, chunk_size: see :func:`info_nce`.
        queue_size: number of past embeddings kept as extra negatives (0 = no queue).

    Shapes: ``forward(z (V, N, d), index (N,) optional)`` → scalar loss
    (and :class:`InfoNCEDiagnostics` when ``return_diagnostics``).
    """

    def __init__(
        self,
        temperature: float = 0.1,
        learnable: bool = False,
        mode: str = "all",
        normalize: bool = True,
        queue_size: int = 0,
        tau_plus: float = 0.0,
        beta: float = 0.0,
        chunk_size: int | None = None,
        min_temperature: float = 0.01,
        distributed: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise SciclrError(f"InfoNCE: temperature must be > 0, got {temperature}")
        if mode not in MODES:
            raise SciclrError(f"InfoNCE: mode must be one of {MODES}, got {mode!r}")
        log_t = torch.tensor(math.log(temperature), dtype=torch.float32)
        self.learnable = bool(learnable)
        if self.learnable:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)
        self.min_temperature = float(min_temperature)
        self.mode, self.normalize = mode, bool(normalize)
        self.tau_plus, self.beta = float(tau_plus), float(beta)
        self.chunk_size = chunk_size
        self.distributed = bool(distributed)
        self.queue = NegativeQueue(queue_size)
        self._warned_index = False

    @property
    def temperature(self) -> torch.Tensor:
        """Current τ (a scalar tensor; differentiable when learnable)."""
        if self.learnable:
            return self.log_temperature.clamp(min=math.log(self.min_temperature)).exp()
        return self.log_temperature.exp()

    def forward(
        self,
        z: torch.Tensor,
        return_diagnostics: bool = False,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, InfoNCEDiagnostics]:
        if self.learnable:
            with torch.no_grad():  # keep the parameter inside the range so it never sticks
                self.log_temperature.clamp_(min=math.log(self.min_temperature))
        queue = self.queue.negatives() if len(self.queue) else None
        if queue is not None and index is None and not self._warned_index:
            warnings.warn(
                "InfoNCE: queue in use without `index`; older views of an instance still in the "
                "queue cannot be masked as positives",
                stacklevel=2,
            )
            self._warned_index = True
        out = info_nce(
            z,
            self.temperature,
            self.mode,
            self.normalize,
            queue=queue,
            index=index,
            tau_plus=self.tau_plus,
            beta=self.beta,
            chunk_size=self.chunk_size,
            distributed=self.distributed,
            return_diagnostics=return_diagnostics,
        )
        if self.queue.size and self.training:
            self._enqueue(z, index)
        return out

    @torch.no_grad()
    def _enqueue(self, z: torch.Tensor, index: torch.Tensor | None) -> None:
        zn = z.detach().to(compute_dtype(z.dtype))
        if self.normalize:
            zn = F.normalize(zn, dim=-1)
        v, n, d = zn.shape
        ids = torch.full((n,), -1, dtype=torch.long, device=z.device) if index is None else index
        if self.distributed and world()[0] > 1:
            zn = gather_no_grad(zn, dim=1)
            ids = gather_no_grad(ids.to(z.device).long(), dim=0)
        self.queue.push(zn.reshape(-1, d), ids.long().repeat(v))

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, temperature={float(self.temperature.detach()):.4g}, "
            f"learnable={self.learnable}, normalize={self.normalize}, queue={self.queue.size}, "
            f"tau_plus={self.tau_plus}, beta={self.beta}"
        )


__all__ = [
    "CHUNK_AUTO_BYTES",
    "InfoNCE",
    "InfoNCEDiagnostics",
    "RowStats",
    "compute_dtype",
    "info_nce",
]
