"""What an embedding kept: the ridge R² from an embedding to a handcrafted feature set."""

from __future__ import annotations

import numpy as np

from sciclr.analysis.recovery import feature_recovery
from sciclr.analysis.spec import Settings


def test_a_linear_function_of_the_embedding_is_recovered_and_noise_is_not():
    rng = np.random.default_rng(0)
    n = 600
    emb = rng.normal(size=(n, 8))
    kept = emb[:, :3] @ rng.normal(size=(3, 5)) + 0.05 * rng.normal(size=(n, 5))
    lost = rng.normal(size=(n, 4))  # independent of the embedding
    splits = np.array(["train"] * 400 + ["val"] * 100 + ["test"] * 100)
    table = feature_recovery(
        Settings.from_params({"name": "t"}), splits, {"ssl": emb}, {"kept": kept, "lost": lost}
    ).set_index("target")
    assert table.loc["kept", "value"] > 0.98
    assert abs(table.loc["lost", "value"]) < 0.1
    assert table.loc["kept", "target_dim"] == 5 and table.loc["kept", "n_test"] == 100


def test_without_a_val_split_the_strength_comes_from_cv():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(300, 4))
    target = emb @ rng.normal(size=(4, 2))
    splits = np.array(["train"] * 250 + ["test"] * 50)
    table = feature_recovery(Settings.from_params({}), splits, {"e": emb}, {"t": target})
    assert table["value"].iloc[0] > 0.99 and np.isfinite(table["alpha"].iloc[0])


def test_above_max_items_a_seeded_subsample_of_each_split_is_used():
    rng = np.random.default_rng(2)
    n = 900
    emb = rng.normal(size=(n, 6))
    target = emb[:, :2] @ rng.normal(size=(2, 3)) + 0.8 * rng.normal(size=(n, 3))
    splits = np.array(["train"] * 600 + ["val"] * 150 + ["test"] * 150)

    def run(**analysis):
        s = Settings.from_params({"name": "t", "analysis": analysis})
        return feature_recovery(s, splits, {"e": emb}, {"t": target})

    a, b, full = run(max_items=100), run(max_items=100), run()
    assert a.equals(b)  # seeded: the same subsample, the same R²
    assert (a.n_train.iloc[0], a.n_test.iloc[0]) == (100, 100)
    assert (full.n_train.iloc[0], full.n_test.iloc[0]) == (600, 150)
    assert abs(a.value.iloc[0] - full.value.iloc[0]) > 1e-6  # other items, another estimate
