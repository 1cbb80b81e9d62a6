"""What an embedding kept: how well it predicts each handcrafted feature set.

The optimal InfoNCE critic estimates the log density ratio of the paired views, so an embedding
keeps only what its views share (van den Oord et al. 2018; Tschannen et al. 2020). Before
trusting an embedding, a scientist should see what it encodes: a ridge regression from the
embedding to each handcrafted feature set (k-mer profile, element fractions, lattice
descriptors) fitted on train and scored on test. An R² near 1 for composition and near 0 for the
lattice says "this embedding is a composition predictor".

R² is the variance-weighted one (``1 − Σ_j SS_res,j / Σ_j SS_tot,j`` over the target's columns,
scikit-learn's ``multioutput="variance_weighted"``), so rare near-constant columns (k-mers that
almost never occur) do not dominate; the targets are standardised with train statistics and the
ridge strength is chosen on val (by CV on train when there is no val split). Above
``analysis.max_items`` items of a split, a seeded subsample of that many is used (``n_train``
and ``n_test`` say how many): the bundled splits are below it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from sciclr.analysis.probes import cap_rows, standardize
from sciclr.analysis.scoring import task_seed
from sciclr.analysis.spec import Settings

__all__ = ["RECOVERY_COLUMNS", "feature_recovery"]

RECOVERY_COLUMNS = [
    "dataset",
    "embedding",
    "target",
    "metric",
    "value",
    "alpha",
    "n_train",
    "n_test",
    "target_dim",
]


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum()
    return float(1.0 - ((y - pred) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


def _fit(X: np.ndarray, Y: np.ndarray, alpha: float) -> Ridge:
    return Ridge(alpha=alpha).fit(X, Y)


def feature_recovery(
    settings: Settings,
    splits: np.ndarray,
    embeddings: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    alphas: Sequence[float] | None = None,
) -> pd.DataFrame:
    """R² of a ridge from each embedding to each target feature set (:data:`RECOVERY_COLUMNS`)."""
    alphas = list(alphas or settings["ridge_alpha"])
    cap, seed = int(settings["max_items"]), settings["seed"]
    tr, va, te = (
        cap_rows(np.flatnonzero(splits == s), cap, task_seed(seed, f"max_items:recovery:{s}"))
        for s in ("train", "val", "test")
    )
    rows = []
    for emb, X in embeddings.items():
        for tgt, Y in targets.items():
            if emb == tgt:
                continue
            Xtr, Xte = standardize(X[tr], X[te])
            Ytr, Yte = standardize(Y[tr], Y[te])
            if len(va) >= 2:
                Xva = standardize(X[tr], X[va])[1]
                Yva = standardize(Y[tr], Y[va])[1]
                scores = [_r2(Yva, _fit(Xtr, Ytr, a).predict(Xva)) for a in alphas]
            else:  # no val split: 3-fold CV on train
                folds = list(KFold(3, shuffle=True, random_state=settings["seed"]).split(Xtr))
                scores = [
                    np.mean(
                        [_r2(Ytr[b], _fit(Xtr[a], Ytr[a], al).predict(Xtr[b])) for a, b in folds]
                    )
                    for al in alphas
                ]
            best = alphas[int(np.nanargmax(scores))] if np.isfinite(scores).any() else 1.0
            value = _r2(Yte, _fit(Xtr, Ytr, best).predict(Xte))
            rows.append(
                {
                    "dataset": settings.dataset,
                    "embedding": emb,
                    "target": tgt,
                    "metric": "r2",
                    "value": value,
                    "alpha": best,
                    "n_train": len(tr),
                    "n_test": len(te),
                    "target_dim": Y.shape[1],
                }
            )
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)
