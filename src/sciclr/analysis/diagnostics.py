"""What training did, read from the per-step metrics CSV of the engine.

The quantities (named as the engine writes them; any may be absent):
``loss``; ``temperature`` τ; ``pos_sim``/``neg_sim``, mean cosine similarity of positive and
negative pairs; ``alignment`` E‖f(x)−f(x⁺)‖² and ``uniformity`` log E exp(−2‖f(x)−f(y)‖²)
(Wang & Isola 2020); ``mi_bound`` = ln K − L, the InfoNCE lower bound on the mutual information
between views (van den Oord et al. 2018), with K candidates per anchor; ``margin`` β + τ ln K,
the effective margin between positive and negative similarities implied by the loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sciclr.errors import SciclrError

__all__ = ["DIAGNOSTIC_COLUMNS", "LABELS", "read_training_metrics", "summarize"]

#: Columns summarised (in this order) when present.
DIAGNOSTIC_COLUMNS = [
    "loss",
    "temperature",
    "pos_sim",
    "neg_sim",
    "alignment",
    "uniformity",
    "mi_bound",
    "margin",
    "lr",
]
LABELS = {
    "loss": "InfoNCE loss L",
    "temperature": "temperature τ",
    "pos_sim": "positive-pair cosine",
    "neg_sim": "negative-pair cosine",
    "alignment": "alignment (lower = views closer)",
    "uniformity": "uniformity (lower = more spread)",
    "mi_bound": "ln K − L (MI lower bound, nats)",
    "margin": "effective margin β + τ ln K",
    "lr": "learning rate",
}


def read_training_metrics(path: str | Path) -> pd.DataFrame:
    """Read the metrics CSV; add ``mi_bound`` from ``k`` and ``loss`` when the engine did not."""
    path = Path(path)
    if not path.exists():
        raise SciclrError(f"{path}: training metrics not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SciclrError(f"{path}: cannot read training metrics ({exc})") from None
    if "step" not in df.columns:
        df.insert(0, "step", np.arange(len(df)))
    if "mi_bound" not in df.columns and {"k", "loss"} <= set(df.columns):
        df["mi_bound"] = np.log(pd.to_numeric(df["k"], errors="coerce")) - df["loss"]
    return df


def _phase_column(df: pd.DataFrame) -> str | None:
    for c in ("split", "phase"):
        if c in df.columns:
            return c
    return None


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (phase,) quantity: first, last, min, max, and the step of the last value."""
    phase = _phase_column(df)
    groups = df.groupby(phase, sort=False) if phase else [("train", df)]
    rows = []
    for ph, g in groups:
        for col in DIAGNOSTIC_COLUMNS:
            if col not in g.columns:
                continue
            v = pd.to_numeric(g[col], errors="coerce")
            ok = v.notna().to_numpy()
            if not ok.any():
                continue
            vv = v.to_numpy()[ok]
            rows.append(
                {
                    "phase": ph,
                    "quantity": col,
                    "first": float(vv[0]),
                    "last": float(vv[-1]),
                    "min": float(vv.min()),
                    "max": float(vv.max()),
                    "last_step": int(g["step"].to_numpy()[ok][-1]),
                }
            )
    return pd.DataFrame(
        rows, columns=["phase", "quantity", "first", "last", "min", "max", "last_step"]
    )
