"""CGCNN-style encoder: the decomposed convolution equals the paper's concatenated form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sciclr.data.crystal_batch import CrystalBatch
from sciclr.encoders.crystals import CGConv, CrystalGNN, GaussianRBF


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
    for pooling, readout, width in (("mean", "concat", 48), ("attention", "last", 16)):
        gnn = CrystalGNN(
            hidden=16, layers=2, n_rbf=8, cutoff=6.0, pooling=pooling, readout=readout
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
