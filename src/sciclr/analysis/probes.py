"""Probes on frozen features: the same code scores the SSL embeddings and every baseline.

Linear probing (Alain & Bengio 2016; the protocol of SimCLR, Chen et al. 2020): features are
standardised with train statistics; L2-regularised logistic regression (classification) or
ridge (regression) is fitted on the train split with the regularisation strength chosen on the
val split when the task has one, otherwise by k-fold CV on train; it is scored once on test.
k-NN (cosine, fixed k) needs no fitting and shows local structure; a random forest on the
handcrafted features is the strong non-linear baseline; a dummy (most frequent class / train
mean) is the floor every representation must clear.

At scale (``analysis.max_items``): a probe is fitted on at most ``max_items`` train items and
its regularisation chosen on at most ``max_items`` val items, seeded subsamples
(:func:`cap_rows`; class-stratified for classification, the same items for every feature set,
so comparisons stay paired), and it predicts every test item, ``max_items`` rows at a time.
The ``param`` note says when and how much was subsampled. The bundled splits are below the cap,
so their fits are the exact ones. Why a subsample and not a streamed fit of all rows: the fits
are superlinear in time (logistic L-BFGS iterations grow with n, the forest is n log n per
tree, k-NN is n_train x n_test) and their memory is O(n d); a linear probe's variance at
20,000 items is far below the test split's bootstrap interval.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.linalg import LinAlgWarning
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from sciclr.analysis.logistic import fit_logistic
from sciclr.analysis.scoring import Prediction, metric_functions, task_seed
from sciclr.analysis.spec import HIGHER_IS_BETTER, KNN_WORKING_MEMORY_MB, Settings, TaskData
from sciclr.errors import SciclrError

__all__ = ["cap_rows", "fit_linear", "fit_predict", "ridge_path", "run_probes", "standardize"]

log = logging.getLogger(__name__)


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale columns to zero mean / unit variance with *train* statistics, float32 out.

    scikit-learn's ``StandardScaler`` (constant columns keep scale 1, so they become 0). It
    took 0.83× the time of the former hand-written version on the DNA 6-mer profiles
    (7,309 × 2,080: 110 vs 132 ms) and 1.8× on the materials element fractions (3,202 × 118:
    2.7 vs 1.5 ms, input validation), under the 2× of the project rule
    (``python benchmarks/libraries.py --parts c``).
    """
    scaler = StandardScaler().fit(train)
    return [scaler.transform(x).astype(np.float32, copy=False) for x in (train, *others)]


def cap_rows(rows: np.ndarray, cap: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """``rows`` when there are at most ``cap`` of them, else a seeded subsample of exactly
    ``cap`` (sorted). With ``labels`` (one per row) it is stratified: every class keeps its
    share (largest remainders) and at least one item."""
    rows = np.asarray(rows)
    n, cap = len(rows), int(cap)
    if n <= cap:
        return rows
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(rows, size=cap, replace=False))
    classes, inv, counts = np.unique(
        np.asarray(labels).astype(str), return_inverse=True, return_counts=True
    )
    quota = counts * (cap / n)
    take = np.maximum(np.floor(quota).astype(np.int64), 1)
    short = cap - int(take.sum())
    if short > 0:  # largest remainders first
        take[np.argsort(-(quota - np.floor(quota)), kind="stable")[:short]] += 1
    while take.sum() > cap:  # the minimum of one per class overshot: trim the largest
        take[np.argmax(take)] -= 1
    picks = [
        rng.choice(np.flatnonzero(inv == c), size=min(int(take[c]), int(counts[c])), replace=False)
        for c in range(len(classes))
    ]
    return np.sort(rows[np.concatenate(picks)])


def _fit_rows(
    task: TaskData, rows: Mapping[str, np.ndarray], settings: Settings
) -> tuple[np.ndarray, np.ndarray, str]:
    """Train and val rows a probe is fitted and selected on (:func:`cap_rows` at
    ``analysis.max_items``, seeded per task and split) and the note saying so ("" if none)."""
    cap = int(settings["max_items"])
    out, notes = [], []
    for split in ("train", "val"):
        r = np.asarray(rows[split])
        labels = task.y[r] if task.type == "classification" else None
        kept = cap_rows(
            r, cap, task_seed(settings["seed"], f"max_items:{split}:{task.name}"), labels
        )
        out.append(kept)
        if len(kept) < len(r):
            notes.append(f"{len(kept):,} of {len(r):,} {split}")
    note = f"; subsample {' and '.join(notes)} items (max_items)" if notes else ""
    return out[0], out[1], note


def _chunked(fn, X: np.ndarray, rows: np.ndarray, chunk: int):
    """``fn(X[rows])`` computed ``chunk`` rows at a time (one call when they fit): the test
    split's copies stay bounded; a row's result does not depend on the others."""
    if len(rows) <= chunk:
        return fn(X[rows])
    parts = [fn(X[rows[i : i + chunk]]) for i in range(0, len(rows), chunk)]
    preds = np.concatenate([p[0] for p in parts])
    scores = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return preds, scores


def ridge_path(
    X: np.ndarray, y: np.ndarray, alphas: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge solutions for every alpha: ``sklearn.linear_model.Ridge(alpha, fit_intercept=True)``.

    X: ``(n, d)``, y: ``(n,)`` → coefficients ``(A, d)`` and intercepts ``(A,)``. One ``Ridge``
    fit in float64 with one alpha per target column (``A`` copies of ``y``, scikit-learn's
    per-target ``alpha`` array): the Gram matrix is formed once and each alpha costs one
    Cholesky solve. For the 11 alphas of the default grid that took 0.42× the time of the
    one-SVD path sciclr used before on the DNA 6-mer profiles (5,110 × 2,080: 2.2 vs 5.3 s) and
    0.11× on the materials element fractions; ``Ridge`` fitted per alpha took 1.1× / 0.9×.
    Coefficients equal the per-alpha fits to 4e-10 relative
    (``python benchmarks/libraries.py --parts b``).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a = np.asarray(alphas, dtype=np.float64).reshape(-1)
    with warnings.catch_warnings():
        # small alphas on collinear profiles (frequencies sum to 1) are ill-conditioned for the
        # Cholesky solve; the solutions still agree with the SVD to ~1e-10 (benchmark b)
        warnings.simplefilter("ignore", LinAlgWarning)
        fit = Ridge(alpha=a).fit(X, np.repeat(y[:, None], len(a), axis=1))
    return np.atleast_2d(fit.coef_), np.atleast_1d(fit.intercept_)


def _metric_value(
    task: TaskData, y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray | None
) -> float:
    fn = metric_functions(task.type, [task.metric], y_true, y_pred, score, task.positive)
    if task.metric not in fn:
        return float("nan")
    return float(fn[task.metric](np.ones((1, len(y_true))))[0])


def _better(a: float, b: float, metric: str) -> bool:
    if not np.isfinite(a):
        return False
    if not np.isfinite(b):
        return True
    return a > b + 1e-12 if HIGHER_IS_BETTER[metric] else a < b - 1e-12


def _balanced(task: TaskData, settings: Settings) -> bool:
    mode = settings["class_weight"]
    if mode not in ("auto", "balanced", "none"):
        raise SciclrError(
            f"params: analysis.class_weight {mode!r}; expected auto, balanced or none"
        )
    return mode == "balanced" or (
        mode == "auto" and task.metric in ("balanced_accuracy", "macro_f1")
    )


def _positive_score(model, X: np.ndarray, positive: str | None) -> np.ndarray | None:
    if positive is None:
        return None
    classes = [str(c) for c in model.classes_]
    if positive not in classes:
        return np.zeros(len(X))
    return model.predict_proba(X)[:, classes.index(positive)]


def _folds(
    task: TaskData, y: np.ndarray, settings: Settings
) -> list[tuple[np.ndarray, np.ndarray]]:
    k = int(settings["cv_folds"])
    if task.type == "classification":
        _, counts = np.unique(y.astype(str), return_counts=True)
        k = min(k, int(counts.min()))
        if k < 2:
            return []
        splitter = StratifiedKFold(k, shuffle=True, random_state=settings["seed"])
        return list(splitter.split(np.zeros(len(y)), y.astype(str)))
    k = min(k, len(y))
    if k < 2:
        return []
    return list(KFold(k, shuffle=True, random_state=settings["seed"]).split(np.zeros(len(y))))


def _path_scores(
    task: TaskData,
    Xtr: np.ndarray,
    ytr: np.ndarray,
    Xev: np.ndarray,
    yev: np.ndarray,
    grid: Sequence[float],
    settings: Settings,
) -> np.ndarray:
    """Metric of each regularisation value in ``grid`` fitted on (Xtr, ytr), scored on (Xev, yev)."""
    Xtr, Xev = standardize(Xtr, Xev)
    out = np.full(len(grid), np.nan)
    if task.type == "regression":
        coefs, icpt = ridge_path(Xtr, ytr.astype(float), grid)
        for j in range(len(grid)):
            out[j] = _metric_value(task, yev, Xev @ coefs[j] + icpt[j], None)
        return out
    if len(np.unique(ytr.astype(str))) < 2:
        return out
    model = None
    for j in np.argsort(grid):  # increasing C: each fit warm-starts from the more regularised one
        model = fit_logistic(
            Xtr,
            ytr,
            float(grid[j]),
            settings["max_iter"],
            init=model,
            balanced=_balanced(task, settings),
        )
        out[j] = _metric_value(
            task, yev, model.predict(Xev), _positive_score(model, Xev, task.positive)
        )
    return out


def fit_linear(
    task: TaskData,
    Xtr: np.ndarray,
    ytr: np.ndarray,
    Xval: np.ndarray | None,
    yval: np.ndarray | None,
    settings: Settings,
) -> tuple[float, str]:
    """Choose the L2 strength: on the val split when it scores, else by k-fold CV on train.

    Returns the chosen value and a note such as ``"C=0.1 (val)"``. When several values tie for
    the best score, the middle one of them is taken (the stronger on an even count).
    """
    name = "alpha" if task.type == "regression" else "C"
    grid = list(settings["ridge_alpha"] if task.type == "regression" else settings["logistic_c"])
    # strongest regularisation first: large alpha, small C
    grid = sorted(grid, reverse=task.type == "regression")
    scores, how = None, ""
    if Xval is not None and yval is not None and len(yval) >= 2:
        s = _path_scores(task, Xtr, ytr, Xval, yval, grid, settings)
        if np.isfinite(s).any():
            scores, how = s, "val"
    if scores is None:
        folds = _folds(task, ytr, settings)
        if folds:
            per_fold = np.stack(
                [
                    _path_scores(task, Xtr[a], ytr[a], Xtr[b], ytr[b], grid, settings)
                    for a, b in folds
                ]
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                scores = np.nanmean(per_fold, axis=0)
            how = f"{len(folds)}-fold CV"
    if scores is None or not np.isfinite(scores).any():
        value = 1.0
        return value, f"{name}={value:g} (default: too few items to select)"
    best = 0
    for j in range(1, len(grid)):
        if _better(scores[j], scores[best], task.metric):
            best = j
    # a plateau of equal best scores (a small or saturated val split): take its middle, not
    # its strongest edge, which under-fits when the plateau reaches far into strong penalties
    tied = [j for j in range(len(grid)) if not _better(scores[best], scores[j], task.metric)]
    best = tied[(len(tied) - 1) // 2]
    return float(grid[best]), f"{name}={grid[best]:g} ({how})"


def _dummy(task: TaskData, ytr: np.ndarray, n_test: int) -> tuple[np.ndarray, np.ndarray | None]:
    if task.type == "regression":
        return np.full(n_test, float(np.mean(ytr.astype(float)))), None
    labels, counts = np.unique(ytr.astype(str), return_counts=True)
    pred = np.full(n_test, labels[np.argmax(counts)], dtype=object)
    score = None
    if task.positive is not None:
        score = np.full(n_test, float(np.mean(ytr.astype(str) == task.positive)))
    return pred, score


def fit_predict(
    probe: str,
    task: TaskData,
    X: np.ndarray,
    rows: Mapping[str, np.ndarray],
    settings: Settings,
    threads: int,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Fit ``probe`` on train rows, predict test rows → (y_pred, score, param note).

    Above ``analysis.max_items`` train (val) rows the fit (the selection) uses a seeded
    subsample of that size; every test row is predicted, at most ``max_items`` at a time."""
    tr, va, sub_note = _fit_rows(task, rows, settings)
    te = rows["test"]
    chunk = int(settings["max_items"])
    ytr = task.y[tr]
    seed = int(settings["seed"])
    if probe == "linear":
        value, note = fit_linear(
            task, X[tr], ytr, X[va] if len(va) else None, task.y[va] if len(va) else None, settings
        )
        scaler = StandardScaler().fit(X[tr])

        def scale(x: np.ndarray) -> np.ndarray:  # what standardize(X[tr], x) returns for x
            return scaler.transform(x).astype(np.float32, copy=False)

        Xtr = scale(X[tr])
        if task.type == "regression":
            coefs, icpt = ridge_path(Xtr, ytr.astype(float), [value])
            pred, _ = _chunked(lambda x: (scale(x) @ coefs[0] + icpt[0], None), X, te, chunk)
            return pred, None, note + sub_note
        model = fit_logistic(
            Xtr, ytr, value, settings["max_iter"], balanced=_balanced(task, settings)
        )
        note += ", balanced classes" if _balanced(task, settings) else ""

        def predict(x: np.ndarray):
            x = scale(x)
            return model.predict(x).astype(object), _positive_score(model, x, task.positive)

        pred, score = _chunked(predict, X, te, chunk)
        return pred, score, note + sub_note
    if probe == "knn":
        k = min(int(settings["knn_k"]), len(tr))
        scaler = StandardScaler().fit(X[tr])

        def scale(x: np.ndarray) -> np.ndarray:
            return scaler.transform(x).astype(np.float32, copy=False)

        Xtr = scale(X[tr])
        kw = {"n_neighbors": k, "metric": "cosine", "algorithm": "brute", "n_jobs": threads}
        if task.type == "regression":
            model = KNeighborsRegressor(**kw).fit(Xtr, ytr.astype(float))
            with config_context(working_memory=KNN_WORKING_MEMORY_MB):
                pred, _ = _chunked(lambda x: (model.predict(scale(x)), None), X, te, chunk)
            return pred, None, f"k={k}" + sub_note
        model = KNeighborsClassifier(**kw).fit(Xtr, ytr)

        def predict(x: np.ndarray):
            x = scale(x)
            return model.predict(x).astype(object), _positive_score(model, x, task.positive)

        with config_context(working_memory=KNN_WORKING_MEMORY_MB):
            pred, score = _chunked(predict, X, te, chunk)
        return pred, score, f"k={k}" + sub_note
    if probe == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        kw = {"n_estimators": int(settings["rf_trees"]), "n_jobs": threads, "random_state": seed}
        note = f"trees={kw['n_estimators']}" + sub_note
        if task.type == "regression":
            model = RandomForestRegressor(**kw).fit(X[tr], ytr.astype(float))
            pred, _ = _chunked(lambda x: (model.predict(x), None), X, te, chunk)
            return pred, None, note
        model = RandomForestClassifier(**kw).fit(X[tr], ytr.astype(str))
        pred, score = _chunked(
            lambda x: (model.predict(x).astype(object), _positive_score(model, x, task.positive)),
            X,
            te,
            chunk,
        )
        return pred, score, note
    raise SciclrError(f"params: unknown probe {probe!r}; known: linear, knn, rf")


def run_probes(
    settings: Settings,
    ids: np.ndarray,
    splits: np.ndarray,
    tasks: Sequence[TaskData],
    features: Mapping[str, np.ndarray],
    threads: int = 1,
) -> list[Prediction]:
    """Every probe for every task and feature set, plus the dummy, on the test split.

    ids, splits: ``(n,)`` per record; features: name → ``(n, d)`` row-aligned with ``ids``.
    """
    preds: list[Prediction] = []
    for task in tasks:
        rows = {s: np.flatnonzero((splits == s) & task.valid) for s in ("train", "val", "test")}
        if len(rows["test"]) == 0 or len(rows["train"]) == 0:
            raise SciclrError(
                f"records.tsv: task {task.name!r} has {len(rows['train'])} train and "
                f"{len(rows['test'])} test records with a label; both must be > 0"
            )
        if task.type == "classification" and len(np.unique(task.y[rows["train"]].astype(str))) < 2:
            raise SciclrError(
                f"records.tsv: task {task.name!r}: the train split holds a single class; "
                "nothing to probe"
            )
        te = rows["test"]
        base = {
            "dataset": settings.dataset,
            "task": task.name,
            "task_type": task.type,
            "ids": ids[te],
            "y_true": task.y[te],
            "positive": task.positive,
            "n_train": len(rows["train"]),
        }
        y_pred, score = _dummy(task, task.y[rows["train"]], len(te))
        preds.append(
            Prediction(
                feature_set="dummy", probe="dummy", y_pred=y_pred, score=score, param="", **base
            )
        )
        for fs, X in features.items():
            probes = list(settings["probes"])
            if fs in settings["rf_features"]:
                probes.append("rf")
            for probe in probes:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    y_pred, score, note = fit_predict(probe, task, X, rows, settings, threads)
                log.info("probe %s / %s / %s: %s", task.name, fs, probe, note)
                preds.append(
                    Prediction(
                        feature_set=fs, probe=probe, y_pred=y_pred, score=score, param=note, **base
                    )
                )
    return preds
