"""CGCNN-style encoder: the decomposed convolution equals the paper's concatenated form."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sciclr.data.crystal_batch import CrystalBatch
from sciclr.data.lattice import lattice_invariants
from sciclr.encoders.crystals import SHELLS, CGConv, CrystalGNN, GaussianRBF, bond_orientations


def toy_batch(seed: int = 0, n_graphs: int = 3) -> CrystalBatch:
    g = torch.Generator().manual_seed(seed)
    sizes = torch.tensor([2, 3, 4][:n_graphs])
    batch = torch.repeat_interleave(torch.arange(n_graphs), sizes)
    start = torch.cumsum(sizes, 0) - sizes
    src, dst = [], []
    for k, n in enumerate(sizes.tolist()):  # a complete graph per crystal (test data only)
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        src.append(i.flatten() + start[k])
        dst.append(j.flatten() + start[k])
    ei = torch.stack([torch.cat(src), torch.cat(dst)])
    vec = torch.randn(ei.shape[1], 3, generator=g) * 2
    return CrystalBatch(
        z=torch.randint(1, 90, (int(sizes.sum()),), generator=g),
        batch=batch,
        edge_index=ei,
        edge_vec=vec,
        edge_dist=vec.norm(dim=-1),
        composition=torch.rand(n_graphs, 118, generator=g),
        xrd=torch.rand(n_graphs, 320, generator=g),
        cell=lattice_invariants(torch.randn(n_graphs, 3, 3, generator=g) + 4 * torch.eye(3), sizes),
        num_graphs=n_graphs,
    )


def test_rbf_vanishes_smoothly_at_cutoff():
    rbf = GaussianRBF(16, cutoff=5.0)
    out = rbf(torch.tensor([0.0, 2.5, 4.999, 5.0, 7.0]))
    assert out.shape == (5, 16)
    assert out[3:].abs().max() == 0 and out[2].abs().max() < 1e-5
    assert out[0, 0] == 1.0  # the first Gaussian sits at 0


def test_cgconv_equals_concatenated_formulation():
    torch.manual_seed(0)
    b = toy_batch()
    h = torch.randn(len(b.z), 8)
    u = torch.randn(b.edge_index.shape[1], 5)
    conv = CGConv(8, 5, norm="layer").eval()
    # the paper's form: z = [h_i, h_j, u_ij] @ W
    w = torch.cat([conv.dst.weight, conv.src.weight, conv.edge.weight], dim=1)
    src, dst = b.edge_index
    z = torch.cat([h[dst], h[src], u], dim=1) @ w.T + conv.dst.bias
    gate, core = z.chunk(2, dim=-1)
    msg = torch.sigmoid(gate) * F.softplus(core)
    agg = torch.zeros_like(h).index_add_(0, dst, msg)
    want = F.softplus(h + conv.norm(agg))
    torch.testing.assert_close(conv(h, b.edge_index, u), want, atol=1e-5, rtol=1e-5)


def test_pooling_is_per_graph_and_order_invariant():
    torch.manual_seed(0)
    b = toy_batch()
    cases = (("mean", "concat", False, 48), ("attention", "last", True, 32))
    for pooling, readout, lattice, width in cases:
        gnn = CrystalGNN(
            hidden=16,
            layers=2,
            n_rbf=8,
            cutoff=6.0,
            pooling=pooling,
            readout=readout,
            lattice=lattice,
            element_features=lattice,
        ).eval()
        out = gnn(b)
        assert out.shape == (3, width) == (3, gnn.out_dim)
        # each graph alone gives the same vector as inside the batch
        single = CrystalBatch(
            z=b.z[:2],
            batch=b.batch[:2],
            edge_index=b.edge_index[:, :4],
            edge_vec=b.edge_vec[:4],
            edge_dist=b.edge_dist[:4],
            composition=b.composition[:1],
            xrd=b.xrd[:1],
            cell=b.cell[:1],
            num_graphs=1,
        )
        torch.testing.assert_close(gnn(single)[0], out[0], atol=1e-5, rtol=1e-5)
        # reversing the edge order changes nothing
        rev = torch.arange(b.edge_index.shape[1] - 1, -1, -1)
        flipped = CrystalBatch(
            z=b.z,
            batch=b.batch,
            edge_index=b.edge_index[:, rev],
            edge_vec=b.edge_vec[rev],
            edge_dist=b.edge_dist[rev],
            composition=b.composition,
            xrd=b.xrd,
            cell=b.cell,
            num_graphs=3,
        )
        torch.testing.assert_close(gnn(flipped), out, atol=1e-5, rtol=1e-5)


def test_concat_readout_starts_with_pooled_element_embeddings():
    """The first block of the concatenated readout is linear in the composition."""
    b = toy_batch()
    gnn = CrystalGNN(hidden=8, layers=2, n_rbf=8, readout="concat").eval()
    out = gnn(b)
    counts = torch.bincount(b.batch).unsqueeze(1).float()
    pooled = torch.zeros(3, 8).index_add_(0, b.batch, gnn.embed(b.z)) / counts
    torch.testing.assert_close(out[:, :8], pooled)


def _shell(vectors: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One centre (atom 0) with the given neighbour vectors (neighbours are atoms 1..n)."""
    v = torch.tensor(vectors, dtype=torch.float32)
    ei = torch.stack([torch.arange(1, len(v) + 1), torch.zeros(len(v), dtype=torch.long)])
    return v, ei


def test_bond_orientations_match_steinhardt_reference_values():
    """q_4, q_6 of the ideal simple-cubic, bcc and fcc first shells (Steinhardt et al. 1983;
    the values tabulated by Mickel et al., J. Chem. Phys. 138, 044501 (2013))."""
    sc = [[s * (i == k) for k in range(3)] for i in range(3) for s in (1.0, -1.0)]
    bcc = [[x, y, z] for x in (1.0, -1.0) for y in (1.0, -1.0) for z in (1.0, -1.0)]
    fcc = [
        v for a in (1.0, -1.0) for b in (1.0, -1.0) for v in ([a, b, 0.0], [a, 0.0, b], [0.0, a, b])
    ]
    n_shells = len(SHELLS) + 1
    for vecs, q4, q6 in ((sc, 0.7638, 0.3536), (bcc, 0.5092, 0.6285), (fcc, 0.1909, 0.5745)):
        v, ei = _shell(vecs)
        atoms, edges = bond_orientations(v, ei, len(vecs) + 1, 6)
        q = atoms[0, : 6 * n_shells].view(6, n_shells)
        for s in range(n_shells):  # one shell: every weighting gives the same q_l (soft
            # weights ~0.98 in the first shell: the coordination numbers are within 2e-2)
            torch.testing.assert_close(q[[3, 5], s], torch.tensor([q4, q6]), atol=2e-4, rtol=0)
            assert q[[0, 2, 4], s].abs().max() < 1e-4  # centrosymmetric: odd l vanish
        torch.testing.assert_close(
            atoms[0, -n_shells:], torch.full((n_shells,), math.log1p(len(vecs))), atol=2e-2, rtol=0
        )
        # the per-edge sums average to q_l² (addition theorem)
        torch.testing.assert_close(
            edges.mean(0)[[3, 5]], torch.tensor([q4, q6]) ** 2, atol=2e-4, rtol=0
        )
        assert (atoms[1:] == 0).all()  # atoms without neighbours get zeros


def test_bond_orientations_shells_separate_first_neighbours():
    """bcc with its 6 second neighbours (at 2/√3 of the first distance): the first soft shell
    keeps the 8-neighbour cube, the catch-all shell sees all 14."""
    bcc = [[x, y, z] for x in (1.0, -1.0) for y in (1.0, -1.0) for z in (1.0, -1.0)]
    second = [[2.0 * s * (i == k) for k in range(3)] for i in range(3) for s in (1.0, -1.0)]
    v, ei = _shell(bcc + second)
    atoms, _ = bond_orientations(v, ei, 15, 6)
    n_shells = len(SHELLS) + 1
    q = atoms[0, : 6 * n_shells].view(6, n_shells)
    torch.testing.assert_close(q[5, 0], torch.tensor(0.6285), atol=1e-2, rtol=0)
    assert abs(float(q[5, -1]) - 0.6285) > 0.05
    assert abs(float(atoms[0, -n_shells]) - math.log1p(8)) < 0.05
    assert abs(float(atoms[0, -n_shells + 1]) - math.log1p(14)) < 0.05
    assert abs(float(atoms[0, -1]) - math.log1p(14)) < 1e-4


def test_bond_orientations_are_rotation_and_order_invariant():
    b = toy_batch(seed=3)
    atoms, edges = bond_orientations(b.edge_vec, b.edge_index, len(b.z), 4)
    rot, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    atoms_r, edges_r = bond_orientations(b.edge_vec @ rot.T, b.edge_index, len(b.z), 4)
    torch.testing.assert_close(atoms_r, atoms, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(edges_r, edges, atol=1e-4, rtol=1e-4)
    perm = torch.randperm(len(b.edge_dist), generator=torch.Generator().manual_seed(2))
    atoms_p, edges_p = bond_orientations(b.edge_vec[perm], b.edge_index[:, perm], len(b.z), 4)
    torch.testing.assert_close(atoms_p, atoms, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(edges_p, edges[perm], atol=1e-5, rtol=1e-5)


def test_angular_gnn_sees_orientation_that_distances_miss():
    """Two centres with identical neighbour distances, square vs. tetrahedron-like: a
    distance-only GNN cannot tell them apart, the angular one can."""
    torch.manual_seed(0)
    square = [[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]]
    t = 1 / math.sqrt(3)
    tetra = [[t, t, t], [t, -t, -t], [-t, t, -t], [-t, -t, t]]

    def one(vecs):
        v, ei = _shell(vecs)
        return CrystalBatch(
            z=torch.tensor([14, 8, 8, 8, 8]),
            batch=torch.zeros(5, dtype=torch.long),
            edge_index=ei,
            edge_vec=v,
            edge_dist=v.norm(dim=-1),
            composition=torch.zeros(1, 118),
            xrd=torch.zeros(1, 320),
            cell=lattice_invariants(4 * torch.eye(3).unsqueeze(0), torch.tensor([5])),
            num_graphs=1,
        )

    for angular, differs in ((0, False), (6, True)):
        gnn = CrystalGNN(hidden=8, layers=2, n_rbf=8, norm="layer", angular=angular).eval()
        gap = (gnn(one(square)) - gnn(one(tetra))).abs().max()
        assert (gap > 1e-3) == differs
        assert gnn(one(square)).shape == (1, gnn.out_dim) == (1, 8 * 3)


def test_lattice_branch_sees_the_cell_and_not_its_basis():
    """Same atoms and edges, a cubic vs a tetragonal cell: only the lattice branch tells them
    apart, and re-describing the cell in another basis changes nothing."""
    torch.manual_seed(0)
    b = toy_batch()
    sizes = torch.bincount(b.batch)
    gnn = CrystalGNN(hidden=8, layers=1, n_rbf=8, lattice=True).eval()
    cubic = 4 * torch.eye(3).expand(3, 3, 3)
    tetragonal = cubic * torch.tensor([1.0, 1.0, 1.3]).unsqueeze(1)
    shear = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])  # det 1
    out = {
        name: gnn(CrystalBatch(**{**b.__dict__, "cell": lattice_invariants(lat, sizes)}))
        for name, lat in (("c", cubic), ("t", tetragonal), ("c'", shear @ cubic))
    }
    assert out["c"].shape == (3, gnn.out_dim) == (3, 8 * 2 + 8)
    torch.testing.assert_close(out["c"][:, :16], out["t"][:, :16])
    assert (out["c"][:, 16:] - out["t"][:, 16:]).abs().max() > 1e-3
    torch.testing.assert_close(out["c"], out["c'"], atol=1e-5, rtol=1e-5)


def test_element_features_make_similar_elements_start_close():
    """With physical descriptors added, the untrained descriptor projection already places Na
    and K (same group) closer than Na and Cl (held for 300 of 300 random inits; seeded here)."""
    torch.manual_seed(0)
    gnn = CrystalGNN(hidden=32, layers=1, n_rbf=8, element_features=True).eval()
    h = gnn.element_proj(gnn.elements[torch.tensor([11, 19, 17])])
    assert (h[0] - h[1]).norm() < (h[0] - h[2]).norm()
