"""L2 logistic regression of the linear probes: scikit-learn's ``LogisticRegression`` (lbfgs).

A thin wrapper that keeps sciclr's call (``fit_logistic(X, y, C, …, init=…, balanced=…)``) and
model object. Objective: ``mean_i w_i CE_i + ||W||² / (2 C n)`` with an unpenalised intercept,
gradient tolerance 1e-4; multinomial for K > 2 classes, one weight vector for K = 2 (so a
binary fit at a given C is regularised twice as strongly as the former two-column multinomial
one was; C is selected on its grid either way). ``init`` warm-starts from a previous model with the same classes (scikit-learn's
``warm_start``), as the probes do along the C path.

sciclr had its own full-batch torch L-BFGS here (said to be 1.5–2.2× faster than
scikit-learn). Measured along the probes' C path with warm starts plus the refit at the
selected C (``python benchmarks/libraries.py --parts a``; a shared 2-core machine, load ≈ 4),
this wrapper took 0.08× the torch time on the 6-mer profiles of the DNA train split
(5,110 × 2,080, 11 classes: 7 s vs 85 s) and 0.54× on the materials element fractions
(2,562 × 118, 7 classes, balanced), 0.37× / 0.42× with every thread pool at one thread
(``--threads 1``); same selected C and identical test predictions on the DNA task.

The fit runs with one BLAS thread: its matrix products are skinny (one column per class), and
two OpenBLAS threads made the same scikit-learn fit 2× (DNA) to 8× (materials) slower on that
machine — 4.5× the torch time on the materials path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import ThreadpoolController

__all__ = ["LogisticModel", "fit_logistic"]


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # inspecting the loaded libraries costs ~4 ms: once


@dataclass
class LogisticModel:
    """A fitted ``LogisticRegression`` with the class labels as ``str``."""

    estimator: LogisticRegression

    @property
    def classes(self) -> np.ndarray:
        return self.estimator.classes_

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    @property
    def n_iter(self) -> int:
        return int(np.max(self.estimator.n_iter_))

    def decision(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.decision_function(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(X).astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X)


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    C: float,
    max_iter: int = 1000,
    tol: float = 1e-4,
    init: LogisticModel | None = None,
    balanced: bool = False,
) -> LogisticModel:
    """Fit on ``X`` ``(n, d)`` and labels ``y`` ``(n,)``; ``init`` warm-starts (same classes).

    ``balanced`` weights each item by ``n / (K n_class)`` (``class_weight="balanced"``), so rare
    classes count as much as common ones — the matching training objective when the task is
    scored by balanced accuracy or macro-F1.
    """
    labels = np.asarray(y).astype(str)
    est = LogisticRegression(
        C=float(C),
        max_iter=int(max_iter),
        tol=float(tol),
        class_weight="balanced" if balanced else None,
        warm_start=init is not None,
    )
    if init is not None and np.array_equal(init.classes, np.unique(labels)):
        est.coef_ = init.estimator.coef_.copy()
        est.intercept_ = init.estimator.intercept_.copy()
    with _threadpools().limit(limits=1, user_api="blas"):  # skinny products: see module doc
        est.fit(X, labels)
    return LogisticModel(est)
