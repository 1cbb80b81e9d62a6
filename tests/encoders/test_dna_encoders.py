"""DNA encoders: exact reverse-complement invariance, padding independence, shapes."""

from __future__ import annotations

import pytest
import torch

from sciclr.data.dna.codes import PAD, TOKEN_OFFSET, TOKEN_PAD
from sciclr.encoders.dna import (
    DilatedResNet1d,
    KmerMLP,
    KmerTransformer,
    kmer_detector_,
    masked_pool,
    one_hot,
)
from sciclr.encoders.heads import MLP, ProjectionHead
from sciclr.views.dna import reverse_complement
from sciclr.views.dna_tokens import token_reverse_complement


def random_batch(seed: int = 0, n: int = 6, width: int = 300):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(20, width + 1, (n,), generator=g)
    lens[0] = width
    codes = torch.randint(0, 5, (n, width), generator=g, dtype=torch.uint8)
    codes[torch.arange(width)[None, :] >= lens[:, None]] = PAD
    return codes, lens


def small_cnn(**kw) -> DilatedResNet1d:
    torch.manual_seed(0)
    enc = DilatedResNet1d(channels=24, blocks=3, kernel_size=5, stem_kernel=9, pool=4, **kw)
    # non-trivial BN statistics, as after training
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return enc.eval()


def test_one_hot_and_masked_pool():
    x = one_hot(torch.tensor([[0, 3, 4, PAD]], dtype=torch.uint8))
    assert x.shape == (1, 4, 4)
    assert x[0, :, 0].tolist() == [1, 0, 0, 0] and x[0, :, 1].tolist() == [0, 0, 0, 1]
    assert x[0, :, 2].tolist() == [0.25] * 4 and x[0, :, 3].tolist() == [0] * 4
    h = torch.tensor([[[1.0, 5.0, 100.0]]])
    valid = torch.tensor([[True, True, False]])
    assert masked_pool(h, valid).tolist() == [[3.0, 5.0]]
    assert masked_pool(h, torch.zeros_like(valid)).tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("pooling", ["meanmax", "mean"])
def test_cnn_is_exactly_rc_invariant(pooling):
    enc = small_cnn(rc_invariant=True, pooling=pooling)
    codes, lens = random_batch()
    with torch.no_grad():
        a = enc(codes, lens)
        b = enc(reverse_complement(codes, lens), lens)
    assert a.shape == (6, enc.out_dim) == (6, 24 * (2 if pooling == "meanmax" else 1))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_cnn_without_the_option_is_strand_sensitive():
    enc = small_cnn(rc_invariant=False)
    codes, lens = random_batch()
    with torch.no_grad():
        gap = (enc(codes, lens) - enc(reverse_complement(codes, lens), lens)).abs().max()
    assert gap > 1e-2


def test_cnn_rc_invariant_in_training_mode_too():
    enc = small_cnn(rc_invariant=True).train()
    codes, lens = random_batch()
    a = enc(codes, lens)
    b = enc(reverse_complement(codes, lens), lens)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # batch statistics: same samples


@pytest.mark.parametrize("rc", [True, False])
def test_cnn_embedding_does_not_depend_on_batch_padding(rc):
    enc = small_cnn(rc_invariant=rc)
    codes, lens = random_batch()
    wide = torch.full((codes.shape[0], codes.shape[1] + 77), PAD, dtype=torch.uint8)
    wide[:, : codes.shape[1]] = codes
    with torch.no_grad():
        batched = enc(codes, lens)
        alone = torch.cat([enc(codes[i : i + 1, : lens[i]], lens[i : i + 1]) for i in range(6)])
        padded = enc(wide, lens)
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched, padded, rtol=0, atol=1e-5)


def test_cnn_gradients_reach_every_parameter():
    enc = DilatedResNet1d(channels=8, blocks=2, rc_invariant=True)
    codes, lens = random_batch(n=4, width=64)
    enc(codes, lens).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_cnn_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        DilatedResNet1d(kernel_size=4)


def _tokens(seed=0, n=5, width=40, k=3):
    g = torch.Generator().manual_seed(seed)
    n_tok = torch.randint(3, width + 1, (n,), generator=g)
    tok = torch.randint(1, 4**k + TOKEN_OFFSET, (n, width), generator=g, dtype=torch.int16)
    tok[torch.arange(width)[None, :] >= n_tok[:, None]] = TOKEN_PAD
    return tok, n_tok


def test_transformer_rc_invariant_and_padding_free():
    torch.manual_seed(0)
    enc = KmerTransformer(k=3, d_model=32, heads=4, layers=2, ff=64, rc_invariant=True).eval()
    tok, n_tok = _tokens()
    with torch.no_grad():
        a = enc(tok, n_tok)
        b = enc(token_reverse_complement(tok, n_tok, 3), n_tok)
        alone = torch.cat([enc(tok[i : i + 1, : n_tok[i]], n_tok[i : i + 1]) for i in range(5)])
    assert a.shape == (5, 64)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(a, alone, rtol=0, atol=1e-5)


def test_kmer_mlp_and_heads_shapes():
    mlp = KmerMLP(k=4, hidden=32, out_dim=16)
    prof = torch.rand(7, 136)
    assert mlp(prof / prof.sum(1, keepdim=True)).shape == (7, 16)
    head = ProjectionHead(16, 32, 8)
    assert head(torch.randn(7, 16)).shape == (7, 8)
    assert head.in_dim == 16 and head.out_dim == 8
    three = ProjectionHead(16, 32, 8, num_layers=3, norm="layer")
    assert sum(isinstance(m, torch.nn.Linear) for m in three.modules()) == 3
    assert isinstance(MLP(4, 8, 2, num_layers=1)[0], torch.nn.Linear)
    with pytest.raises(ValueError, match="norm"):
        ProjectionHead(4, 8, 2, norm="group")


def test_kmer_detector_init_counts_kmers_exactly():
    from sciclr.data.dna import encode
    from sciclr.data.dna.kmers import kmer_profile

    conv = torch.nn.Conv1d(4, 300, 9, padding=4)
    assert kmer_detector_(conv, 4) == 256
    s = "ACGTTGCANNNNACGTAAAAAC"
    x = torch.from_numpy(encode(s))[None]
    fired = torch.relu(conv(one_hot(x)))[0, :256]
    assert set(fired.unique().tolist()) <= {0.0, 1.0}
    # summed over positions, the detectors give the plain (non-canonical) 4-mer counts
    expect = kmer_profile(x, 4, canonical=False, normalize=False)[0]
    assert torch.equal(fired.sum(1), expect)
    with pytest.raises(ValueError, match="shorter than the k-mer"):
        kmer_detector_(torch.nn.Conv1d(4, 8, 3), 4)


def test_multiscale_kmer_stem_shapes_and_invariance():
    torch.manual_seed(0)
    enc = DilatedResNet1d(
        channels=16, blocks=1, stem_channels=32, multiscale=True, stem_init="kmer", init_k=2
    ).eval()
    codes, lens = random_batch(n=4, width=120)
    with torch.no_grad():
        a = enc(codes, lens)
        b = enc(reverse_complement(codes, lens), lens)
    assert a.shape == (4, 2 * 16 + 32) == (4, enc.out_dim)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_composition_branch_starts_as_the_kmer_profile():
    from sciclr.data.dna.kmers import kmer_profile

    torch.manual_seed(0)
    enc = DilatedResNet1d(
        channels=8,
        blocks=1,
        stem_channels=256,
        multiscale=True,
        stem_init="kmer",
        rc_invariant=False,
    ).eval()
    codes, lens = random_batch(n=5, width=200)
    with torch.no_grad():
        comp = enc(codes, lens)[:, :256]
    counts = kmer_profile(codes, 4, canonical=False, normalize=False)
    torch.testing.assert_close(comp * lens[:, None], counts, rtol=0, atol=1e-4)


def test_neck_sets_the_embedding_width():
    enc = DilatedResNet1d(channels=8, blocks=1, stem_channels=16, multiscale=True, neck=24)
    codes, lens = random_batch(n=4, width=64)
    assert enc(codes, lens).shape == (4, 24) and enc.out_dim == 24
