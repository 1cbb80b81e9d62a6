"""Element descriptor table: finite, standardised, row 0 empty, valence counts right."""

from __future__ import annotations

import numpy as np
import torch

from sciclr.data.elements import composition_descriptors, element_descriptors, valence_electrons


def test_table_is_finite_with_an_empty_masked_row():
    t = element_descriptors()
    assert t.shape[0] == 119 and t.dtype == np.float32
    assert np.isfinite(t).all()
    assert not t[0].any()
    assert not t.flags.writeable


def test_valence_shells_from_electronic_structure():
    assert valence_electrons("[Ar].3d6.4s2") == (2, 0, 6, 0)
    assert valence_electrons("[Ne].3s2.3p4") == (2, 4, 0, 0)
    assert valence_electrons("1s1") == (1, 0, 0, 0)


def test_same_group_elements_are_nearer_than_across_the_table():
    t = element_descriptors()
    na, k, cl = t[11], t[19], t[17]
    assert np.linalg.norm(na - k) < np.linalg.norm(na - cl)


def test_composition_descriptors_are_magpie_statistics():
    """FeO2-like row: weighted mean, std, max and min of each descriptor over Fe and O."""
    t = torch.from_numpy(np.array(element_descriptors()))
    comp = torch.zeros(2, 118, dtype=torch.float64)
    comp[0, 26 - 1], comp[0, 8 - 1] = 1 / 3, 2 / 3
    comp[1, 26 - 1] = 1.0  # an element alone: no spread
    d = composition_descriptors(comp)
    width = t.shape[1]
    fe, o = t[26].double(), t[8].double()
    mean = fe / 3 + 2 * o / 3
    torch.testing.assert_close(d[0, :width], mean)
    torch.testing.assert_close(
        d[0, width : 2 * width], (fe**2 / 3 + 2 * o**2 / 3 - mean**2).sqrt(), atol=1e-6, rtol=1e-6
    )
    torch.testing.assert_close(d[0, 2 * width : 3 * width], torch.maximum(fe, o))
    torch.testing.assert_close(d[0, 3 * width :], torch.minimum(fe, o))
    torch.testing.assert_close(
        d[1, width : 2 * width], torch.zeros(width, dtype=torch.float64), atol=1e-6, rtol=0
    )
