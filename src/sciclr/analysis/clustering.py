"""Unsupervised structure of a representation: do its clusters recover the labels?

Three clusterers with different assumptions: k-means with k = number of labels (convex, equal
variance; MacQueen 1967), HDBSCAN (density, finds k itself and marks noise; Campello et al. 2013,
scikit-learn's implementation), and Leiden community detection on a symmetrised cosine k-NN graph
(Traag et al. 2019, the single-cell standard). Agreement with the labels is measured by ARI and
NMI (ARI with a bootstrap CI over items); the silhouette (Rousseeuw 1987) of each clustering, and of the
true labels, describes the geometry without the labels.

At scale (``analysis.max_items_cluster``): HDBSCAN (O(n²) worst case, its memory grows with the
neighbour graph) and Leiden on the exact k-NN graph (n² distances) cluster a seeded,
class-stratified subsample of that many items, the same for every feature set (so the
verdict's paired comparisons hold), and are scored on it; k-means fits its centres on the
subsample and assigns every item (nearest centre, linear in n), so it is scored on all of them.
The silhouette samples ``silhouette_max`` items as before. ``param`` and ``n_test`` say what was
clustered. Standardisation takes its statistics from at most ``analysis.max_items`` train
items (a seeded subsample). The bundled splits are below both caps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from sciclr.analysis import metrics as M
from sciclr.analysis.bootstrap import Estimate, estimates
from sciclr.analysis.probes import cap_rows, standardize
from sciclr.analysis.scoring import task_seed
from sciclr.analysis.spec import KNN_WORKING_MEMORY_MB, Settings, TaskData
from sciclr.errors import SciclrError

__all__ = [
    "cluster",
    "hdbscan_labels",
    "kmeans_labels",
    "leiden_labels",
    "prepare",
    "run_clustering",
]

log = logging.getLogger(__name__)
METHODS = ("kmeans", "hdbscan", "leiden")
ASSIGNMENT_COLUMNS = ["dataset", "task", "feature_set", "method", "id", "label", "cluster"]


def prepare(X: np.ndarray, train_rows: np.ndarray, rows: np.ndarray, scale: str) -> np.ndarray:
    """Rows ``rows`` of ``X`` scaled as configured (standardise with train statistics, L2, none).

    L2 is ``sklearn.preprocessing.normalize`` in float64 (zero rows stay zero): the same values
    as the former hand-written division, 0.85–1.3× its time on the DNA 6-mer test split
    (1,083 × 2,080: 12–16 ms; ``python benchmarks/libraries.py --parts c``).
    """
    if scale == "standardize":
        return standardize(X[train_rows] if len(train_rows) else X[rows], X[rows])[1]
    if scale == "l2":
        return normalize(X[rows].astype(np.float64)).astype(np.float32)
    if scale == "none":
        return X[rows].astype(np.float32)
    raise SciclrError(f"params: analysis.cluster_scale {scale!r}; expected standardize, l2 or none")


def kmeans_labels(Z: np.ndarray, k: int, seed: int, fit: np.ndarray | None = None) -> np.ndarray:
    """k-means labels of every row of ``Z``; ``fit``: the rows the centres are fitted on (the
    others are assigned to their nearest centre), default all."""
    km = KMeans(n_clusters=k, n_init=10, random_state=seed)
    if fit is None:
        return km.fit_predict(Z)
    return km.fit(Z[fit]).predict(Z)


def hdbscan_labels(
    Z: np.ndarray, min_cluster_size: int, pca: int, seed: int, min_samples: int | None = 5
) -> np.ndarray:
    """HDBSCAN labels, ``-1`` = noise; optional PCA first (density estimates degrade in high d).

    A ``min_samples`` below ``min_cluster_size`` keeps fewer points as noise: on planted
    Gaussian clusters in 12-d, ARI rises from 0.34 (scikit-learn's default) to 0.76 at 5.
    """
    if pca and Z.shape[1] > pca and len(Z) > pca:
        Z = PCA(n_components=pca, random_state=seed).fit_transform(Z)
    mcs = max(2, min(int(min_cluster_size), len(Z)))
    ms = None if min_samples is None else max(1, min(int(min_samples), len(Z) - 1))
    return HDBSCAN(min_cluster_size=mcs, min_samples=ms, copy=True).fit_predict(Z)


def leiden_labels(Z: np.ndarray, n_neighbors: int, resolution: float, seed: int) -> np.ndarray:
    """Leiden partition (RB-configuration / modularity at ``resolution``) of the cosine k-NN graph."""
    import igraph as ig
    import leidenalg

    k = max(1, min(int(n_neighbors), len(Z) - 1))
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(Z)
    with config_context(working_memory=KNN_WORKING_MEMORY_MB):
        idx = nn.kneighbors(Z, return_distance=False)[:, 1:]
    src = np.repeat(np.arange(len(Z)), k)
    dst = idx.ravel()
    a, b = np.minimum(src, dst), np.maximum(src, dst)
    keep = a != b
    edges = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0)
    g = ig.Graph(n=len(Z), edges=edges.tolist())
    part = leidenalg.find_partition(
        g, leidenalg.RBConfigurationVertexPartition, resolution_parameter=resolution, seed=seed
    )
    return np.asarray(part.membership, dtype=np.int64)


def cluster(
    Z: np.ndarray, method: str, k: int, settings: Settings, fit: np.ndarray | None = None
) -> np.ndarray:
    """Cluster labels ``(n,)`` of ``Z`` ``(n, d)`` with one method; ``fit``: the rows k-means
    fits its centres on (default all; the other methods cluster the rows they are given)."""
    seed = int(settings["seed"])
    if method == "kmeans":
        return kmeans_labels(Z, k, seed, fit)
    if method == "hdbscan":
        return hdbscan_labels(
            Z,
            settings["hdbscan_min_cluster_size"],
            settings["hdbscan_pca"],
            seed,
            settings["hdbscan_min_samples"],
        )
    if method == "leiden":
        return leiden_labels(Z, settings["leiden_neighbors"], settings["leiden_resolution"], seed)
    raise SciclrError(f"params: unknown cluster method {method!r}; known: {METHODS}")


def _silhouette(Z: np.ndarray, labels: np.ndarray, settings: Settings) -> float:
    keep = labels >= 0  # HDBSCAN noise has no cluster to belong to
    n_lab = len(np.unique(labels[keep]))
    if n_lab < 2 or n_lab >= keep.sum():
        return float("nan")
    n = int(keep.sum())
    size = min(n, int(settings["silhouette_max"]))
    return float(
        silhouette_score(
            Z[keep],
            labels[keep],
            metric="cosine",
            sample_size=size if size < n else None,
            random_state=settings["seed"],
        )
    )


def cluster_task(settings: Settings, tasks: Sequence[TaskData]) -> TaskData:
    """The classification task clusters are scored against: ``cluster_column``, else the first
    task flagged ``cluster: true``, else the first classification task."""
    name = settings["cluster_column"]
    cls = [t for t in tasks if t.type == "classification"]
    if name is not None:
        match = [t for t in tasks if name in (t.name, t.column)]
        if not match or match[0].type != "classification":
            raise SciclrError(
                f"params: analysis.cluster_column {name!r} is not a classification task "
                f"(have: {[t.name for t in cls]})"
            )
        return match[0]
    flagged = [t for t in cls if t.cluster]
    if flagged:
        return flagged[0]
    if not cls:
        raise SciclrError("params: clustering needs a classification task; none configured")
    return cls[0]


def run_clustering(
    settings: Settings,
    ids: np.ndarray,
    splits: np.ndarray,
    task: TaskData,
    features: Mapping[str, np.ndarray],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cluster each feature set's items of ``cluster_split``.

    Returns the metric rows (:data:`~sciclr.analysis.scoring.METRIC_COLUMNS`; probe = method,
    plus probe ``labels``: the silhouette of the true labels) and the assignments
    (:data:`ASSIGNMENT_COLUMNS`, one row per feature set × method × item).
    """
    split = settings["cluster_split"]
    rows = np.flatnonzero(((splits == split) | (split == "all")) & task.valid)
    # standardisation statistics from at most max_items train rows (seeded): bounded memory
    train_rows = cap_rows(
        np.flatnonzero((splits == "train") & task.valid),
        int(settings["max_items"]),
        task_seed(settings["seed"], "max_items:scale:" + task.name),
    )
    if len(rows) < 3:
        raise SciclrError(
            f"records.tsv: {len(rows)} labelled records in split {split!r} for task {task.name!r}; "
            "clustering needs at least 3"
        )
    truth = task.y[rows].astype(str)
    k = len(np.unique(truth))
    level, n_boot = float(settings["ci_level"]), int(settings["bootstrap"])
    seed = task_seed(settings["seed"], "cluster:" + task.name)
    metric_rows: list[dict[str, object]] = []
    assign: list[pd.DataFrame] = []
    base = {"dataset": settings.dataset, "task": task.name, "task_type": "clustering"}
    n = len(rows)
    cap = int(settings["max_items_cluster"])
    # the subsample (positions into rows) is the task's, not the feature set's: paired items
    sub = cap_rows(np.arange(n), cap, task_seed(settings["seed"], "max_items:" + task.name), truth)
    sil_max = int(settings["silhouette_max"])

    def sil_note(m: int) -> str:
        return f"silhouette on {sil_max:,} of {m:,} items" if m > sil_max else ""

    for fs, X in features.items():
        Z = prepare(X, train_rows, rows, settings["cluster_scale"])
        metric_rows.append(
            {
                **base,
                "feature_set": fs,
                "probe": "labels",
                "metric": "silhouette",
                "value": _silhouette(Z, np.unique(truth, return_inverse=True)[1], settings),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n_train": 0,
                "n_test": n,
                "param": sil_note(n),
            }
        )
        for method in settings["clustering"]:
            notes = [f"k={k}"] if method == "kmeans" else []
            if len(sub) == n:
                pos, labels = np.arange(n), cluster(Z, method, k, settings)
            elif method == "kmeans":  # centres from the subsample, every item assigned
                pos, labels = np.arange(n), cluster(Z, method, k, settings, fit=sub)
                notes.append(f"centres fitted on {len(sub):,} of {n:,} items (max_items_cluster)")
            else:
                pos, labels = sub, cluster(Z[sub], method, k, settings)
                notes.append(f"subsample {len(sub):,} of {n:,} items (max_items_cluster)")
            notes += [sil_note(len(pos))] if sil_note(len(pos)) else []
            t = truth[pos]
            log.info(
                "cluster %s / %s: %d clusters", fs, method, len(np.unique(labels[labels >= 0]))
            )
            # noise points (HDBSCAN -1) count as one more cluster: they are not free to drop
            # ARI gets a bootstrap CI (pairs of distinct items, see metrics.adjusted_rand); the
            # plug-in NMI of a resample is biased upwards (fewer distinct items), so its
            # percentile interval can exclude the estimate itself: NMI is reported without CI
            (ari,) = estimates(
                [lambda W, c=labels, t=t: M.adjusted_rand(t, c, W)], len(pos), n_boot, seed, level
            )
            nmi = Estimate(float(M.normalized_mutual_info(t, labels, np.ones((1, len(pos))))[0]))
            n_clusters = len(np.unique(labels[labels >= 0]))
            common = {
                **base,
                "feature_set": fs,
                "probe": method,
                "n_train": 0,
                "n_test": len(pos),
                "param": "; ".join(notes),
            }
            for name, e in (("ari", ari), ("nmi", nmi)):
                metric_rows.append(
                    {
                        **common,
                        "metric": name,
                        "value": e.value,
                        "ci_low": e.ci_low,
                        "ci_high": e.ci_high,
                    }
                )
            extra = [
                ("silhouette", _silhouette(Z[pos] if len(pos) < n else Z, labels, settings)),
                ("n_clusters", float(n_clusters)),
            ]
            if method == "hdbscan":
                extra.append(("noise_fraction", float(np.mean(labels < 0))))
            for name, v in extra:
                metric_rows.append(
                    {**common, "metric": name, "value": v, "ci_low": np.nan, "ci_high": np.nan}
                )
            assign.append(
                pd.DataFrame(
                    {
                        "dataset": settings.dataset,
                        "task": task.name,
                        "feature_set": fs,
                        "method": method,
                        "id": ids[rows[pos]],
                        "label": t,
                        "cluster": labels,
                    }
                )
            )
    assignments = (
        pd.concat(assign, ignore_index=True) if assign else pd.DataFrame(columns=ASSIGNMENT_COLUMNS)
    )
    return pd.DataFrame(metric_rows), assignments
