"""Cross-view fast path: one logits matrix per unordered view pair, read by rows and by columns.

For views ``a < b`` the ordered pairs ``(a, b)`` and ``(b, a)`` use ``S = Z_a Z_bᵀ/τ`` and its
transpose, so one matrix product serves both. While ``|S| ≤ B`` with ``B + ln N < 80`` (checked
beforehand from the norms; ``B = 1/τ`` on the sphere) the exponentials ``E = exp(S)`` and their
row and column sums are normal float32 numbers with full relative precision, so no max-shift is
needed: ``E`` is taken in place, row sums give the a→b log-sum-exps, column sums the b→a ones,
and the gradient of both directions is ``E ⊙ (a_r + b_c)`` (formed in place, blockwise) plus
the diagonal — three matrix products in all, like autograd of the bare product, and one
``N × N`` buffer. Otherwise callers use the row kernel (two products per pair).

The arithmetic runs in the dtype of ``z`` (float32, or float64 for float64 embeddings). In
float32 the backward turns ``E`` into the gradient in place, so a second backward through the
graph is refused (autograd's version check); in float64 — the checking precision, not the
speed path — it works on a copy, so the graph can be differentiated twice (as
``torch.autograd.gradcheck`` does to test reentrancy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd import Function

from sciclr.losses.rows import RowStats, exp_is_exact, softplus

_NEG_INF = float("-inf")
_BLOCK_ELEMS = 1 << 22  # 16 MB temporaries: few operations, still cache-friendly
_EPS = 1e-12  # as F.normalize


def usable(max_logit: float, n: int) -> bool:
    """Whether the pair path is exact when ``|S| ≤ max_logit`` (1/τ on the sphere)."""
    return exp_is_exact(max_logit, n)


class _FusedPairs(Function):
    """z (V, n, d) → loss terms (2, B, n) of the B unordered view pairs, both directions.

    Normalisation, view selection and 1/τ are inside, so their backward is a handful of
    ``V·n·d`` operations instead of an autograd chain (it matters at small N).
    """

    @staticmethod
    def forward(ctx, z, inv_tau, first, second, normalize):  # type: ignore[override]
        if normalize:
            norm = z.norm(dim=-1, keepdim=True).clamp_min(_EPS)
            zn = z / norm
        else:
            norm, zn = None, z
        two = first == [0] and second == [1]
        A = (zn[:1] if two else zn[first]) * inv_tau
        K = zn[1:] if two else zn[second]
        S = torch.bmm(A, K.transpose(1, 2))  # (B, n, n)
        diag = S.diagonal(dim1=1, dim2=2)
        s_pos = diag.clone()
        diag.fill_(_NEG_INF)  # E excludes the positives: sums over negatives only
        E = S.exp_()
        lse = torch.log(torch.stack([E.sum(-1), E.sum(-2)]))  # (2, B, n): a→b rows, b→a cols
        ctx.first, ctx.second, ctx.two = first, second, two
        ctx.inv_tau = inv_tau  # a float, or a scalar tensor (then it receives a gradient)
        ctx.save_for_backward(zn, norm, A, K, E, s_pos, lse)
        ctx.mark_non_differentiable(s_pos, lse)
        return softplus(lse - s_pos), s_pos, lse

    @staticmethod
    def backward(ctx, g, *_):  # type: ignore[override]
        zn, norm, A, K, P, s_pos, lse = ctx.saved_tensors
        inv_tau = ctx.inv_tau
        # P becomes the gradient in place: a second backward through this graph is refused by
        # autograd's version check (saved tensor modified), never silently wrong; float64 keeps
        # E (one more n × n buffer) so that its graph can be differentiated twice
        if P.dtype == torch.float64:
            P = P.clone()
        with torch.autocast(device_type=zn.device.type, enabled=False):
            g = g.to(zn.dtype)
            full = torch.logaddexp(lse, s_pos)  # log-sum-exp of the whole row / column
            diag = (g * torch.expm1(s_pos - full)).sum(0)  # softmax − 1 at the positive
            coef = g * torch.exp(-full)  # softmax = E · exp(−full), per direction
            a, b_ = coef[0], coef[1]
            bsz, n, _ = P.shape
            step = max(1, _BLOCK_ELEMS // max(1, bsz * n))
            for i in range(0, n, step):  # G = E ⊙ (a_r + b_c), in place, cache-sized blocks
                j = min(n, i + step)
                P[:, i:j].mul_(a[:, i:j, None] + b_[:, None, :])
            P.diagonal(dim1=1, dim2=2).copy_(diag)
            gA = torch.bmm(P, K)  # gradient w.r.t. A = inv_tau · zn[first]
            gK = torch.bmm(P.transpose(1, 2), A)
            g_inv_tau = (gA * A).sum() / inv_tau if ctx.needs_input_grad[1] else None
            if g_inv_tau is not None:
                g_inv_tau = g_inv_tau.reshape(inv_tau.shape)
            if ctx.two:
                gzn = torch.cat([gA.mul_(inv_tau), gK])
            else:
                gzn = torch.zeros_like(zn).index_add_(0, _idx(ctx.second, zn), gK)
                gzn.index_add_(0, _idx(ctx.first, zn), gA.mul_(inv_tau))
            if norm is not None:  # through zn = z / ‖z‖: remove the radial part, divide by ‖z‖
                gzn.sub_(zn * (zn * gzn).sum(-1, keepdim=True)).div_(norm)
        return gzn, g_inv_tau, None, None, None


def _idx(views: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(views, dtype=torch.long, device=like.device)


def pair_terms(
    z: torch.Tensor, inv_tau: float | torch.Tensor, normalize: bool, stats: bool = True
) -> tuple[torch.Tensor, RowStats | None]:
    """Loss terms of both directions of every unordered view pair, ``(2, B, n)``.

    ``z (V, n, d)``: raw embeddings in the compute dtype (float32 or float64; call with autocast
    off); ``inv_tau``: 1/τ, a float or a scalar tensor (same dtype) that receives a gradient.
    ``terms[0, p]`` is the direction a→b of pair ``p = (a, b)``, ``terms[1, p]`` b→a.
    """
    v = z.shape[0]
    first = [a for a in range(v) for _ in range(a + 1, v)]
    second = [b for a in range(v) for b in range(a + 1, v)]
    terms, s_pos, lse = _FusedPairs.apply(z, inv_tau, first, second, normalize)
    if not stats:
        return terms, None
    with torch.no_grad():
        zn = F.normalize(z, dim=-1) if normalize else z
        A, K = zn[first] * inv_tau, zn[second]
        sum_row = torch.bmm(A, K.sum(1).unsqueeze(-1)).squeeze(-1) - s_pos
        sum_col = torch.bmm(K, A.sum(1).unsqueeze(-1)).squeeze(-1) - s_pos
    n = z.shape[1]
    row_stats = RowStats(
        lse_neg=lse.reshape(2 * len(first), n),
        s_pos=torch.cat([s_pos, s_pos]).unsqueeze(-1),
        neg_sum=torch.cat([sum_row, sum_col]),
        n_neg=torch.full((2 * len(first), n), float(n - 1), dtype=z.dtype, device=z.device),
    )
    return terms, row_stats
