"""Element descriptor table: finite, standardised, row 0 empty, valence counts right."""

from __future__ import annotations

import numpy as np

from sciclr.data.elements import element_descriptors, valence_electrons


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
