"""CGCNN-style encoder on torch-geometric: the factorised convolution equals the paper's
concatenated form, and the whole encoder equals a direct formula of the same weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch
from torch_geometric.nn import CGConv as PyGCGConv
from torch_geometric.nn import MessagePassing

from sciclr.data.crystal_batch import CrystalBatch
from sciclr.data.lattice import lattice_invariants, legendre
from sciclr.encoders.crystals import (
    SHELL_WIDTH,
    SHELLS,
    CrystalGNN,
    FactorisedCGConv,
    GaussianRBF,
    bond_orientations,
)


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


def test_rbf_holds_no_subnormal_floats():
    """Far tails and the envelope near the cutoff are 0, not subnormal (slow on CPUs);
    every other value is the Gaussian times the envelope."""
    rbf = GaussianRBF(32, cutoff=6.0)
    d = torch.linspace(0.0, 6.0, 20001)
    out = rbf(d)
    env = 0.5 * (torch.cos(torch.pi * d / 6.0) + 1)
    plain = torch.exp(-(((d[:, None] - rbf.mu) / rbf.width) ** 2)) * env[:, None]
    tiny = torch.finfo(torch.float32).tiny
    assert ((out == 0) | (out >= tiny)).all()
    assert ((plain > 0) & (plain < tiny)).any()  # the unfloored formula does hold some
    torch.testing.assert_close(out, torch.where(plain < 1e-30, 0.0, plain), rtol=0, atol=0)


def test_cgconv_equals_concatenated_formulation():
    torch.manual_seed(0)
    b = toy_batch()
    h = torch.randn(len(b.z), 8)
    u = torch.randn(b.edge_index.shape[1], 5)
    conv = FactorisedCGConv(8, 5, norm="layer").eval()
    assert isinstance(conv, MessagePassing)
    # the paper's form: z = [h_i, h_j, u_ij] @ W
    w = torch.cat([conv.dst.weight, conv.src.weight, conv.edge.weight], dim=1)
    src, dst = b.edge_index
    z = torch.cat([h[dst], h[src], u], dim=1) @ w.T + conv.dst.bias
    gate, core = z.chunk(2, dim=-1)
    msg = torch.sigmoid(gate) * F.softplus(core)
    agg = torch.zeros_like(h).index_add_(0, dst, msg)
    want = F.softplus(h + conv.norm(agg))
    torch.testing.assert_close(conv(h, b.edge_index, u), want, atol=1e-5, rtol=1e-5)


def test_factorised_conv_is_pyg_cgconv_with_norm_and_softplus():
    """Mapped onto torch_geometric.nn.CGConv's weights ([x_i, x_j, e_ij] @ W per gate), the
    factorised conv is PyG's CGConv followed by softplus (norm set to the identity here)."""
    torch.manual_seed(0)
    b = toy_batch()
    h = torch.randn(len(b.z), 8)
    u = torch.randn(b.edge_index.shape[1], 5)
    conv = FactorisedCGConv(8, 5, norm="layer")
    conv.norm = torch.nn.Identity()
    pyg = PyGCGConv(8, dim=5, aggr="add", batch_norm=False)
    w = torch.cat([conv.dst.weight, conv.src.weight, conv.edge.weight], dim=1)  # (2h, 2h + r)
    with torch.no_grad():
        for lin, rows in ((pyg.lin_f, slice(0, 8)), (pyg.lin_s, slice(8, 16))):
            lin.weight.copy_(w[rows])
            lin.bias.copy_(conv.dst.bias[rows])
    want = F.softplus(pyg(h, b.edge_index, u))
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
        name: gnn(b.replace(cell=lattice_invariants(lat, sizes)))
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


# --------------------------------------------------------------------------- the same function
# A direct, readable formula of the encoder (per-centre loops; test sizes only), evaluated on the
# module's own weights: embedding (+ element descriptors), RBFs with a cosine envelope,
# Steinhardt atom features and Legendre edge sums, gated convolutions with norm, residual and
# softplus, mean or attention pooling per crystal, lattice MLP.


def reference_orientations(vec, ei, n_atoms, l_max):
    dst = ei[1]  # centres
    n_shells = len(SHELLS) + 1
    atoms = torch.zeros(n_atoms, n_shells * l_max + n_shells)
    edges = torch.zeros(len(vec), l_max)
    for i in range(n_atoms):
        e = (dst == i).nonzero().flatten()
        if len(e) == 0:
            continue
        d = vec[e].norm(dim=-1)
        unit = vec[e] / d.unsqueeze(1)
        ratio = d / d.min()
        w = torch.stack(
            [torch.sigmoid((r - ratio) / SHELL_WIDTH) for r in SHELLS] + [torch.ones_like(d)], 1
        )
        p = legendre((unit @ unit.T).clamp(-1, 1), l_max)  # (n, n, L)
        s = torch.einsum("jkl,js,ks->ls", p, w, w)
        q = s.clamp(min=0).sqrt() / w.sum(0)
        atoms[i] = torch.cat([q.flatten(), torch.log1p(w.sum(0))])
        edges[e] = p.sum(1) / len(e)
    return atoms, edges


def reference_forward(gnn: CrystalGNN, b: CrystalBatch) -> torch.Tensor:
    src, dst = b.edge_index
    h = gnn.embed.weight[b.z]
    if gnn.element_proj is not None:
        h = h + gnn.element_proj(gnn.elements[b.z])
    d, mu = b.edge_dist.unsqueeze(1), gnn.rbf.mu
    cutoff, width = gnn.rbf.cutoff, gnn.rbf.width
    u = torch.exp(-(((d - mu) / width) ** 2)) * 0.5 * (torch.cos(math.pi * d / cutoff) + 1)
    u = u * (d < cutoff)
    if gnn.angular:
        atoms, edges = reference_orientations(b.edge_vec, b.edge_index, len(b.z), gnn.angular)
        h = h + gnn.geo(atoms)
        u = torch.cat([u, edges], 1)
    hs = [h]
    for conv in gnn.convs:
        w = torch.cat([conv.dst.weight, conv.src.weight, conv.edge.weight], dim=1)
        z = torch.cat([h[dst], h[src], u], dim=1) @ w.T + conv.dst.bias
        gate, core = z.chunk(2, dim=-1)
        msg = torch.sigmoid(gate) * F.softplus(core)
        agg = torch.stack([msg[dst == i].sum(0) for i in range(len(h))])
        h = F.softplus(h + conv.norm(agg))
        hs.append(h)
    h = torch.cat(hs, 1) if gnn.readout == "concat" else h
    pooled = []
    for g in range(b.num_graphs):
        x = h[b.batch == g]
        if gnn.attention is None:
            pooled.append(x.mean(0))
        else:
            a = torch.softmax(gnn.attention.gate_nn(x).squeeze(1), 0)
            pooled.append((a.unsqueeze(1) * x).sum(0))
    out = torch.stack(pooled)
    return out if gnn.lattice is None else torch.cat([out, gnn.lattice(b.cell)], 1)


CONFIGS = [
    dict(pooling="mean", readout="concat", norm="batch", angular=6, lattice=True),
    dict(pooling="attention", readout="last", norm="layer", angular=0, element_features=True),
    dict(pooling="attention", readout="concat", norm="batch", angular=3, element_features=True),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_gnn_equals_reference_formula(kw):
    torch.manual_seed(0)
    b = toy_batch(seed=5)
    gnn = CrystalGNN(hidden=16, layers=2, n_rbf=8, cutoff=4.0, **kw)
    for m in gnn.modules():  # non-trivial running statistics for eval mode
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    for mode in (gnn.train, gnn.eval):  # batch statistics, then running statistics
        mode()
        with torch.no_grad():
            torch.testing.assert_close(gnn(b), reference_forward(gnn, b), atol=1e-5, rtol=1e-5)


def test_bond_orientations_equal_reference_formula():
    b = toy_batch(seed=7)
    b = b.replace(  # an atom without neighbours and an uneven star
        edge_index=b.edge_index[:, 3:],
        edge_vec=b.edge_vec[3:],
        edge_dist=b.edge_dist[3:],
    )
    atoms, edges = bond_orientations(b.edge_vec, b.edge_index, len(b.z) + 1, 5)
    want_atoms, want_edges = reference_orientations(b.edge_vec, b.edge_index, len(b.z) + 1, 5)
    torch.testing.assert_close(atoms, want_atoms, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(edges, want_edges, atol=1e-5, rtol=1e-5)


def test_checkpoint_with_pre_pyg_attention_names_loads():
    """Before the PyG pooling the attention score was ``gate``: such state dicts still load."""
    torch.manual_seed(0)
    b = toy_batch()
    gnn = CrystalGNN(hidden=8, layers=1, n_rbf=8, pooling="attention").eval()
    state = {k.replace("attention.gate_nn.", "gate."): v for k, v in gnn.state_dict().items()}
    assert "gate.weight" in state
    fresh = CrystalGNN(hidden=8, layers=1, n_rbf=8, pooling="attention").eval()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(b), gnn(b))


# --------------------------------------------------------------------------- a PyG batch


def test_crystal_batch_is_a_pyg_batch_and_round_trips():
    b = toy_batch()
    assert isinstance(b, Batch) and b.num_graphs == len(b) == 3 and b.num_nodes == 9
    assert torch.equal(b.ptr, torch.tensor([0, 2, 5, 9]))
    graphs = b.to_data_list()
    assert [g.num_nodes for g in graphs] == [2, 3, 4]
    assert torch.equal(graphs[2].edge_index.max(), torch.tensor(3))  # local atom numbers again
    again = Batch.from_data_list(graphs)  # PyG's own collation gives the same tensors
    for key in ("z", "batch", "ptr", "edge_index", "edge_vec", "edge_dist", "composition", "cell"):
        assert torch.equal(getattr(again, key), getattr(b, key)), key
    assert type(CrystalBatch.from_data_list(graphs)) is CrystalBatch
    # a shallow replacement leaves the original alone; its slices follow the new edges
    keep = torch.arange(b.edge_index.shape[1]) % 3 != 0
    view = b.replace(
        edge_index=b.edge_index[:, keep], edge_vec=b.edge_vec[keep], edge_dist=b.edge_dist[keep]
    )
    assert b.edge_index.shape[1] == 29 and view.edge_index.shape[1] == int(keep.sum())
    assert sum(g.edge_index.shape[1] for g in view.to_data_list()) == int(keep.sum())
    with pytest.raises(KeyError, match="num_graphs"):
        b.replace(num_graphs=torch.tensor(2))


def test_pooling_uses_num_graphs_for_empty_crystals():
    """A trailing crystal without atoms pools to zeros instead of vanishing from the batch."""
    b = toy_batch(n_graphs=2)
    padded = CrystalBatch(
        z=b.z,
        batch=b.batch,
        edge_index=b.edge_index,
        edge_vec=b.edge_vec,
        edge_dist=b.edge_dist,
        composition=torch.cat([b.composition, b.composition[:1]]),
        xrd=torch.cat([b.xrd, b.xrd[:1]]),
        cell=torch.cat([b.cell, b.cell[:1]]),
        num_graphs=3,
    )
    for pooling in ("mean", "attention"):
        gnn = CrystalGNN(hidden=8, layers=1, n_rbf=8, pooling=pooling).eval()
        out = gnn(padded)
        assert out.shape == (3, 16) and (out[2] == 0).all()
        torch.testing.assert_close(out[:2], gnn(b))
