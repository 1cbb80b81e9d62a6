"""Val-split figures of a data set's feature sets: what model choices are made on.

A script, not a test. For a results folder of the workflow, it scores each feature set
(``embeddings/*.npz``, ``features/*.npz``) on the **val** split only (the test split is never
read): a linear probe fitted on train (regularisation chosen by cross-validation inside train),
k-means ARI on val for classification tasks (features standardised with train statistics, k =
the val split's classes), and the same linear probe fitted on seeded class-stratified 10 % and
1 % subsets of train (mean over repeats). The defaults of the bundled config were chosen with it
(see the closing notes and README).

    python benchmarks/val_selection.py results/genomics --params-from config/config.yaml
    python benchmarks/val_selection.py results_exp/materials --dataset materials
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from sciclr.analysis.inputs import load_features
from sciclr.analysis.label_efficiency import draw_subset
from sciclr.analysis.probes import fit_linear, ridge_path, standardize
from sciclr.analysis.spec import Settings, resolve_tasks
from sciclr.config import load_config


def _linear(task, settings, Xtr, ytr, Xva):
    value, _ = fit_linear(task, Xtr, ytr, None, None, settings)  # CV inside train
    Xtr, Xva = standardize(Xtr, Xva)
    if task.type == "regression":
        coefs, icpt = ridge_path(Xtr, ytr.astype(float), [value])
        return Xva @ coefs[0] + icpt[0]
    from sciclr.analysis.logistic import fit_logistic

    balanced = task.metric in ("balanced_accuracy", "macro_f1")
    return fit_logistic(Xtr, ytr, value, settings["max_iter"], balanced=balanced).predict(Xva)


def _score(task, y, pred) -> float:
    if task.type == "regression":
        return float(np.mean(np.abs(y.astype(float) - pred)))
    y, pred = y.astype(str), pred.astype(str)
    if task.metric == "balanced_accuracy":
        return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))
    return float(np.mean(y == pred))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="results/<data set>")
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--overlay", nargs="*", default=[])
    ap.add_argument("--dataset", default=None, help="data set name (default: the folder's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fractions", type=float, nargs="*", default=[0.01, 0.1])
    ap.add_argument("--sets", nargs="*", default=None, help="feature sets (default: all)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    name = args.dataset or args.folder.name
    section = load_config(args.config, *args.overlay)["datasets"][name]
    settings = Settings.from_params({**section, "analysis": {**section["analysis"], "cv_folds": 3}})
    rec = pd.read_csv(args.folder / "processed" / "records.tsv", sep="\t", dtype={"id": str})
    tasks = resolve_tasks(settings, rec)
    ids = rec["id"].to_numpy().astype(str)
    files = {p.stem: p for p in sorted((args.folder / "embeddings").glob("*.npz"))}
    files |= {p.stem: p for p in sorted((args.folder / "features").glob("*.npz"))}
    if args.sets:
        files = {k: v for k, v in files.items() if k in args.sets}
    split = rec["split"].to_numpy()
    out = []
    for fs, path in files.items():
        X = load_features(path, ids)
        for task in tasks:
            tr = np.flatnonzero((split == "train") & task.valid)
            va = np.flatnonzero((split == "val") & task.valid)
            row = {"feature_set": fs, "task": task.name, "metric": task.metric}
            row["linear"] = _score(
                task, task.y[va], _linear(task, settings, X[tr], task.y[tr], X[va])
            )
            if task.type == "classification":
                yv = task.y[va].astype(str)
                Z = standardize(X[tr], X[va])[1]
                km = KMeans(len(np.unique(yv)), n_init=10, random_state=0).fit(Z)
                row["kmeans_ari"] = float(adjusted_rand_score(yv, km.labels_))
            for frac in args.fractions:
                vals = []
                for r in range(args.repeats):
                    sub = tr[draw_subset(task, tr, frac, seed=r)]
                    vals.append(
                        _score(
                            task, task.y[va], _linear(task, settings, X[sub], task.y[sub], X[va])
                        )
                    )
                row[f"linear@{frac:g}"] = float(np.mean(vals))
            out.append(row)
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(out)
    print(table.to_string(index=False))
    if args.json:
        args.json.write_text(table.to_json(orient="records", indent=1))


if __name__ == "__main__":
    main()
