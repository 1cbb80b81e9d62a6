"""Per-anchor InfoNCE terms for a block of logit rows: the one kernel every mode reduces to.

A *row problem* is a batch of ``B`` independent softmax problems. Row ``r`` of problem ``b`` is
an anchor ``R[b, r]`` (already multiplied by 1/τ) scored against the keys ``K[b]``:
``S = R @ K.T`` of shape ``(B, m, c)``. Column sets per row:

* ``pos (B, m, P)`` — the positives (``P = V − 1`` in mode "all", 1 in "cross_view");
* ``excl (B, m, E)`` — columns that are neither (the anchor itself), masked with −inf;
* ``qmask (B or 1, m, q)`` — queue entries (the last ``q`` columns) of the anchor's own instance,
  masked with −inf;
* every other column is a negative.

For each (anchor, positive) pair the loss is ``softplus(L_rp − s_p)`` where ``L_rp`` is the
log-sum-exp of the negatives and the *other* positives. This is exactly ``lse(row) − s_p`` but keeps
full float32 accuracy when the loss is tiny (the negatives would be rounded away next to
``exp(s_p)`` in a plain log-softmax).

Two implementations with identical values:

* :class:`_FusedRows` (no debiasing/hard negatives): one logits buffer, softmax in place, no other
  ``m × c`` temporaries; backward is two matrix products on that buffer. Freshly allocated
  ``m × c`` tensors cost as much as a matrix product on CPU (page faults), hence the care.
* :func:`_general_rows`: plain autograd ops, used for ``tau_plus`` (Chuang et al. 2020, "Debiased
  Contrastive Learning") and ``beta`` (Robinson et al. 2021, "Contrastive Learning with Hard
  Negative Samples"), both in log-space so they stay finite at τ = 0.005.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd import Function

_NEG_INF = float("-inf")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of the loss arithmetic for inputs of ``dtype``: float32, or ``dtype`` if wider
    (bf16/fp16 → float32, float64 → float64)."""
    return torch.promote_types(dtype, torch.float32)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + eˣ)``; above the threshold it is ``x`` (error ``e^{−t}``: t = 20 is below float32
    resolution, float64 needs t = 40)."""
    return F.softplus(x, threshold=40.0 if x.dtype == torch.float64 else 20.0)


@dataclass
class RowStats:
    """Detached per-row statistics for diagnostics (all ``(B, m)`` except ``s_pos``)."""

    lse_neg: torch.Tensor  # log-sum-exp of the (weighted/debiased) negatives
    s_pos: torch.Tensor  # (B, m, P) positive logits
    neg_sum: torch.Tensor  # sum of negative logits
    n_neg: torch.Tensor  # number of negatives


def _pair_terms(s_pos: torch.Tensor, lse_neg: torch.Tensor) -> torch.Tensor:
    """``softplus(L_rp − s_p)`` with ``L_rp = lse(negatives, other positives)``; ``(B, m, P)``."""
    p = s_pos.shape[-1]
    if p == 1:
        other = lse_neg.unsqueeze(-1)
    else:
        eye = torch.eye(p, dtype=torch.bool, device=s_pos.device)
        others = s_pos.unsqueeze(-2).expand(*s_pos.shape[:-1], p, p).masked_fill(eye, _NEG_INF)
        other = torch.logsumexp(
            torch.cat([others, lse_neg[..., None, None].expand(*s_pos.shape, 1)], dim=-1), dim=-1
        )
    return softplus(other - s_pos)


def _linear_neg_sum(
    R: torch.Tensor, K: torch.Tensor, s_pos: torch.Tensor, s_excl: torch.Tensor | None
) -> torch.Tensor:
    """Sum of all logits of a row minus positives/excluded, from ``R · Σ K`` (no m × c pass)."""
    total = torch.bmm(R, K.sum(1).unsqueeze(-1)).squeeze(-1)
    total = total - s_pos.sum(-1)
    if s_excl is not None:
        total = total - s_excl.sum(-1)
    return total


def _mask_queue(S: torch.Tensor, qmask: torch.Tensor | None, neg_sum: torch.Tensor | None) -> None:
    """Mask the anchor's own-instance queue entries in place (subtracting them from neg_sum)."""
    if qmask is None:
        return
    q = qmask.shape[-1]
    tail = S[..., S.shape[-1] - q :]
    mask = qmask.expand_as(tail)
    if neg_sum is not None:
        zero = torch.zeros((), dtype=S.dtype, device=S.device)
        neg_sum.sub_(torch.where(mask, tail, zero).sum(-1))
    tail.masked_fill_(mask, _NEG_INF)


def _count_neg(
    c: int,
    pos: torch.Tensor,
    excl: torch.Tensor | None,
    qmask: torch.Tensor | None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    n = torch.full(pos.shape[:-1], float(c - pos.shape[-1]), dtype=dtype, device=pos.device)
    if excl is not None:
        n = n - excl.shape[-1]
    if qmask is not None:
        n = n - qmask.sum(-1).to(dtype).expand_as(n)
    return n


# exp(±80) and sums of up to e^8 such terms stay normal float32 numbers (float64 has room to
# spare; the same bound keeps the float64 arithmetic on the float32 code paths)
_EXP_RANGE = 80.0


def exp_is_exact(max_logit: float, columns: int) -> bool:
    """Whether ``exp(S)`` can be taken without a shift: ``|S| ≤ max_logit`` keeps every term and
    every row/column sum a normal float32 (full relative precision, no overflow)."""
    return max_logit + math.log(max(2, columns)) < _EXP_RANGE


def softmax_(S: torch.Tensor) -> torch.Tensor:
    """Row softmax over the last dim, in place on CPU (a fresh m × c buffer costs as much as the
    matrix product there, in page faults); out of place elsewhere, where allocations are cached
    and the in-place aliasing of the kernels is untested here."""
    if S.device.type == "cpu":
        return torch._softmax(S, -1, False, out=S)
    return torch.softmax(S, -1)


class _FusedRows(Function):
    """Forward/backward of the plain InfoNCE row terms on a single logits buffer."""

    @staticmethod
    def forward(ctx, R, K, pos, excl, qmask, stats, direct):  # type: ignore[override]
        S = torch.bmm(R, K.transpose(1, 2))
        s_pos = S.gather(2, pos)
        s_excl = S.gather(2, excl) if excl is not None else None
        neg_sum = _linear_neg_sum(R, K, s_pos, s_excl) if stats else None
        S.scatter_(2, pos, _NEG_INF)
        if excl is not None:
            S.scatter_(2, excl, _NEG_INF)
        _mask_queue(S, qmask, neg_sum)
        if direct:  # |S| small enough: E = exp(S) in place, no shift (one pass)
            S = S.exp_()
            lse_neg = torch.log(S.sum(-1))  # −inf for a row without negatives
        else:  # P = softmax(S) in place, lse from the row max
            mx = S.amax(-1)
            S = softmax_(S)
            lse_neg = mx - torch.log(S.amax(-1))  # max of the softmax is exp(mx − lse)
            if qmask is not None:  # masking may leave a row without negatives
                empty = ~torch.isfinite(mx)
                if bool(empty.any()):
                    S.masked_fill_(empty.unsqueeze(-1), 0.0)
                    lse_neg = lse_neg.masked_fill(empty, _NEG_INF)
        ctx.direct = direct
        if neg_sum is None:
            neg_sum = lse_neg.new_empty(0)
        loss = _pair_terms(s_pos, lse_neg)
        ctx.save_for_backward(R, K, pos, S, s_pos, lse_neg)
        ctx.mark_non_differentiable(lse_neg, s_pos, neg_sum)
        return loss, lse_neg, s_pos, neg_sum

    @staticmethod
    def backward(ctx, g, *_):  # type: ignore[override]
        R, K, pos, P_neg, s_pos, lse_neg = ctx.saved_tensors
        with torch.autocast(device_type=R.device.type, enabled=False):
            g = g.to(R.dtype)
            return _FusedRows._grads(g, R, K, pos, P_neg, s_pos, lse_neg, ctx.direct)

    @staticmethod
    def _grads(g, R, K, pos, P_neg, s_pos, lse_neg, direct):
        b, m, p = pos.shape
        d = R.shape[-1]
        lse_full = torch.logaddexp(lse_neg, torch.logsumexp(s_pos, -1))
        gsum = g.sum(-1)
        # dL/dS = gsum · softmax_full − g at positives, softmax_full = exp(S − lse_full)
        # = E · exp(−lse_full) (direct) or P_neg · exp(lse_neg − lse_full) (shifted)
        shift = torch.zeros_like(lse_neg) if direct else lse_neg
        rowscale = (gsum * torch.exp(shift - lse_full)).unsqueeze(-1)
        coef = gsum.unsqueeze(-1) * torch.exp(s_pos - lse_full.unsqueeze(-1)) - g  # (B, m, P)
        idx = pos.reshape(b, m * p, 1).expand(b, m * p, d)
        k_pos = K.gather(1, idx).view(b, m, p, d)
        gR = torch.bmm(P_neg, K).mul_(rowscale)
        gR += (coef.unsqueeze(-1) * k_pos).sum(2)
        gK = torch.bmm(P_neg.transpose(1, 2), R * rowscale)
        gK.scatter_add_(1, idx, (coef.unsqueeze(-1) * R.unsqueeze(2)).reshape(b, m * p, d))
        return gR, gK, None, None, None, None, None


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 − exp(x))`` for ``x < 0``, accurate on both sides of −ln 2 (Mächler 2012)."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _general_rows(R, K, pos, excl, qmask, tau_plus: float, beta: float, min_logit: float):
    """Autograd implementation with debiased (``tau_plus``) and hard-negative (``beta``) masses."""
    S = torch.bmm(R, K.transpose(1, 2))
    s_pos = S.gather(2, pos)
    s_excl = S.gather(2, excl) if excl is not None else None
    with torch.no_grad():
        neg_sum = _linear_neg_sum(R, K, s_pos, s_excl)
        mask = torch.zeros_like(S, dtype=torch.bool).scatter_(2, pos, True)
        if excl is not None:
            mask.scatter_(2, excl, True)
        if qmask is not None:
            q = qmask.shape[-1]
            tail = mask[..., S.shape[-1] - q :]
            tail |= qmask.expand_as(tail)
            own = S.detach()[..., S.shape[-1] - q :].masked_fill(~qmask.expand_as(tail), 0.0)
            neg_sum -= own.sum(-1)
    n_neg = _count_neg(S.shape[-1], pos, excl, qmask, S.dtype)
    Sm = S.masked_fill(mask, _NEG_INF)
    if beta > 0:
        # Σ_j w_j e^{s_j} with w_j = e^{β s_j} / mean_j e^{β s_j}
        lse_neg = (
            torch.logsumexp((1.0 + beta) * Sm, -1) - torch.logsumexp(beta * Sm, -1) + n_neg.log()
        )
    else:
        lse_neg = torch.logsumexp(Sm, -1)
    if tau_plus > 0:
        # N g = max((Σ_neg − N τ⁺ mean_pos e^{s⁺}) / (1 − τ⁺), N e^{min_logit}), in log-space
        pos_mean = torch.logsumexp(s_pos, -1) - math.log(s_pos.shape[-1])
        corr = n_neg.log() + math.log(tau_plus) + pos_mean
        x = corr - lse_neg
        ok = x < 0
        x_safe = torch.where(ok, x, torch.full_like(x, -1.0))
        debiased = lse_neg + _log1mexp(x_safe) - math.log1p(-tau_plus)
        floor = n_neg.log() + min_logit
        lse_neg = torch.where(ok, torch.maximum(debiased, floor), floor)
    loss = _pair_terms(s_pos, lse_neg)
    return loss, lse_neg.detach(), s_pos.detach(), neg_sum, n_neg


def row_terms(
    R: torch.Tensor,
    K: torch.Tensor,
    pos: torch.Tensor,
    excl: torch.Tensor | None = None,
    qmask: torch.Tensor | None = None,
    *,
    tau_plus: float = 0.0,
    beta: float = 0.0,
    min_logit: float = -10.0,
    stats: bool = True,
    max_logit: float | None = None,
) -> tuple[torch.Tensor, RowStats]:
    """Loss terms ``(B, m, P)`` and detached row statistics of one row problem (see module doc).

    ``R`` and ``K`` are cast to :func:`compute_dtype` (float32, float64 stays float64) with
    autocast off: logits and log-sum-exp in bf16 give gradient errors of several percent. ``min_logit`` is the smallest possible logit (−1/τ for
    normalised embeddings), the floor of the debiased negative mass. ``stats=False`` skips the
    diagnostic sums (``neg_sum`` is then empty). ``max_logit``: a bound on ``|S|``; when
    :func:`exp_is_exact` holds for it, exponentials are taken without the row-max shift.
    """
    with torch.autocast(device_type=R.device.type, enabled=False):
        dtype = compute_dtype(torch.promote_types(R.dtype, K.dtype))
        R, K = R.to(dtype), K.to(dtype)
        if tau_plus > 0 or beta > 0:
            loss, lse_neg, s_pos, neg_sum, n_neg = _general_rows(
                R, K, pos, excl, qmask, tau_plus, beta, min_logit
            )
        else:
            direct = max_logit is not None and exp_is_exact(max_logit, K.shape[1])
            loss, lse_neg, s_pos, neg_sum = _FusedRows.apply(R, K, pos, excl, qmask, stats, direct)
            n_neg = (
                _count_neg(K.shape[1], pos, excl, qmask, dtype) if stats else lse_neg.new_empty(0)
            )
    return loss, RowStats(lse_neg, s_pos, neg_sum, n_neg)
