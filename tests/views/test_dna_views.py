"""DNA views: exact properties (hypothesis) and determinism under a seed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.data.dna.codes import PAD, TOKEN_OFFSET, TOKEN_PAD, TOKEN_UNK, decode, encode, tokenize
from sciclr.data.dna.kmers import (
    canonical_kmer_index,
    kmer_profile,
    kmer_profiles_ragged,
    n_canonical_kmers,
)
from sciclr.views.dna import (
    DnaViewConfig,
    make_view,
    mask_n,
    point_mutations,
    random_crop,
    reverse_complement,
)
from sciclr.views.dna_tokens import make_token_view, token_mutations, token_reverse_complement

COMP = str.maketrans("ACGTN", "TGCAN")
seqs = st.lists(st.text("ACGTN", min_size=1, max_size=60), min_size=1, max_size=6)


def pad_batch(strings: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in strings)
    codes = torch.full((len(strings), width), PAD, dtype=torch.uint8)
    for i, s in enumerate(strings):
        codes[i, : len(s)] = torch.from_numpy(encode(s))
    return codes, torch.tensor([len(s) for s in strings])


def unpad(codes: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    return [decode(codes[i, : int(n)].numpy()) for i, n in enumerate(lengths)]


def naive_counts(s: str, k: int, canonical: bool = True) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in range(len(s) - k + 1):
        w = s[i : i + k]
        if "N" in w:
            continue
        if canonical:
            w = min(w, w.translate(COMP)[::-1])
        out[w] = out.get(w, 0) + 1
    return out


@given(seqs)
def test_reverse_complement_matches_strings_and_is_an_involution(strings):
    codes, lens = pad_batch(strings)
    rc = reverse_complement(codes, lens)
    assert unpad(rc, lens) == [s.translate(COMP)[::-1] for s in strings]
    assert (rc[torch.arange(rc.shape[1])[None, :] >= lens[:, None]] == PAD).all()
    assert torch.equal(reverse_complement(rc, lens), codes)


@given(seqs, st.integers(1, 30), st.integers(0, 40), st.integers(0, 2**31 - 1))
def test_crop_is_a_substring_with_length_in_range(strings, lo, extra, seed):
    hi = lo + extra
    codes, lens = pad_batch(strings)
    g = torch.Generator().manual_seed(seed)
    out, out_lens = random_crop(codes, lens, lo, hi, g)
    for s, c, n in zip(strings, unpad(out, out_lens), out_lens.tolist(), strict=True):
        assert c in s
        assert min(lo, len(s)) <= n <= min(hi, len(s))
    assert (out[torch.arange(out.shape[1])[None, :] >= out_lens[:, None]] == PAD).all()


@given(
    st.lists(st.integers(1, 300), min_size=1, max_size=8),
    st.integers(1, 4),
    st.integers(1, 100),
    st.integers(0, 2**31 - 1),
)
def test_disjoint_crops_never_overlap(lengths, parts, lo, seed):
    """Crop positions instead of bases: view v lies inside the v-th of `parts` segments."""
    lens = torch.tensor(lengths)
    pos = torch.arange(max(lengths)).repeat(len(lengths), 1)
    g = torch.Generator().manual_seed(seed)
    spans = []
    for v in range(parts):
        out, n = random_crop(pos, lens, lo, lo + 50, g, part=v, n_parts=parts)
        spans.append((out[:, 0], out.gather(1, (n - 1).clamp(min=0)[:, None])[:, 0], n))
    for v, (first, last, n) in enumerate(spans):
        seg_lo, seg_hi = lens * v // parts, lens * (v + 1) // parts
        ok = n > 0
        assert (first[ok] >= seg_lo[ok]).all() and (last[ok] < seg_hi[ok]).all()
        assert (last[ok] - first[ok] + 1 == n[ok]).all()  # contiguous
        assert (n <= seg_hi - seg_lo).all()


def test_crop_covers_all_starts_and_lengths():
    codes, lens = pad_batch(["ACGTACGTAC"] * 4000)
    out, n = random_crop(codes, lens, 3, 5, torch.Generator().manual_seed(0))
    assert set(n.tolist()) == {3, 4, 5}
    starts = {"ACGTACGTAC".find(c) for c in unpad(out[:200], n[:200])}
    assert starts == {0, 1, 2, 3}  # a periodic sequence: every offset mod 4 is reachable


def test_views_are_deterministic_under_a_seed_and_vary_across_seeds():
    rng = np.random.default_rng(0)
    strings = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(8)]
    codes, lens = pad_batch(strings)
    cfg = DnaViewConfig(
        crop_min=50, crop_max=150, disjoint=True, rc_prob=0.5, mutation_rate=0.05, mask_rate=0.05
    )
    a = make_view(codes, lens, cfg, torch.Generator().manual_seed(7))
    b = make_view(codes, lens, cfg, torch.Generator().manual_seed(7))
    c = make_view(codes, lens, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # pure: the input batch is untouched
    assert unpad(codes, lens) == strings


def test_point_mutations_change_only_bases_at_the_rate():
    codes, _ = pad_batch(["ACGT" * 2500 + "NNNN"])
    g = torch.Generator().manual_seed(1)
    assert torch.equal(point_mutations(codes, 0.0, g), codes)
    out = point_mutations(codes, 0.1, g)
    changed = out != codes
    assert not changed[:, -4:].any()  # N untouched
    assert 0.09 < changed.float().mean().item() < 0.11
    assert (out[changed] < 4).all()
    every = point_mutations(codes, 1.0, g)
    assert (every[:, :-4] != codes[:, :-4]).all()


def test_mask_n_masks_bases_not_padding():
    codes, _ = pad_batch(["ACGT" * 1000, "AC"])
    out = mask_n(codes, 0.2, torch.Generator().manual_seed(0))
    frac = (out[0] == 4).float().mean().item()
    assert 0.17 < frac < 0.23
    assert (out[1, 2:] == PAD).all()


def test_canonical_tables():
    assert n_canonical_kmers(4) == 136 and n_canonical_kmers(6) == 2080
    assert n_canonical_kmers(3) == 32
    table = canonical_kmer_index(2)
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=2)]
    # AC and GT are reverse complements -> one feature; AT is its own
    assert table[kmers.index("AC")] == table[kmers.index("GT")]
    assert len(set(table.tolist())) == 10


@settings(max_examples=60)
@given(seqs, st.integers(1, 5))
def test_kmer_profile_equals_naive_count_and_is_strand_free(strings, k):
    codes, lens = pad_batch(strings)
    counts = kmer_profile(codes, k, canonical=True, normalize=False)
    table = canonical_kmer_index(k)
    for row, s in zip(counts, strings, strict=True):
        expect = np.zeros(n_canonical_kmers(k))
        for w, c in naive_counts(s, k).items():
            idx = int("".join(str("ACGT".index(ch)) for ch in w), 4)
            expect[table[idx]] += c
        assert np.array_equal(row.numpy(), expect)
    rc = kmer_profile(reverse_complement(codes, lens), k, normalize=False)
    assert torch.equal(rc, counts)
    plain = kmer_profile(codes, k, canonical=False, normalize=False)
    assert plain.shape[1] == 4**k and torch.equal(plain.sum(1), counts.sum(1))


@settings(max_examples=40)
@given(seqs, st.integers(1, 6))
def test_ragged_profiles_equal_batched(strings, k):
    codes, _ = pad_batch(strings)
    flat = np.concatenate([encode(s) for s in strings])
    offsets = np.r_[0, np.cumsum([len(s) for s in strings])]
    ragged = kmer_profiles_ragged(flat, offsets, k, chunk_bases=37)  # tiny chunks: many records
    batched = kmer_profile(codes, k).numpy()
    np.testing.assert_allclose(ragged, batched, rtol=1e-6, atol=1e-7)


@given(
    st.lists(st.text("ACGTN", min_size=0, max_size=40), min_size=1, max_size=5), st.integers(1, 4)
)
def test_token_reverse_complement_equals_tokenising_the_reverse_strand(strings, k):
    strings = [s[: len(s) // k * k] or "A" * k for s in strings]  # whole k-mers only
    flat = np.concatenate([encode(s) for s in strings])
    offsets = np.r_[0, np.cumsum([len(s) for s in strings])]
    tok, toff = tokenize(flat, offsets, k)
    rc_flat = np.concatenate([encode(s.translate(COMP)[::-1]) for s in strings])
    rc_tok, _ = tokenize(rc_flat, offsets, k)
    n_tok = torch.as_tensor(np.diff(toff))
    batch = torch.full((len(strings), int(n_tok.max())), TOKEN_PAD, dtype=torch.int16)
    expect = batch.clone()
    for i in range(len(strings)):
        batch[i, : n_tok[i]] = torch.as_tensor(tok[toff[i] : toff[i + 1]])
        expect[i, : n_tok[i]] = torch.as_tensor(rc_tok[toff[i] : toff[i + 1]])
    got = token_reverse_complement(batch, n_tok, k)
    assert torch.equal(got, expect)
    assert torch.equal(token_reverse_complement(got, n_tok, k), batch)


def test_token_mutations_change_one_base_of_hit_tokens():
    k = 4
    tokens = torch.arange(TOKEN_OFFSET, 4**k + TOKEN_OFFSET).repeat(20)[None, :]
    tokens = torch.cat([tokens, torch.tensor([[TOKEN_UNK, TOKEN_PAD]])], dim=1)
    out = token_mutations(tokens, k, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(out[0, -2:], tokens[0, -2:])
    a, b = tokens[0, :-2] - TOKEN_OFFSET, out[0, :-2] - TOKEN_OFFSET
    diff_digits = sum(((a >> (2 * j)) & 3) != ((b >> (2 * j)) & 3) for j in range(k))
    assert (diff_digits == 1).all()


def test_token_view_shapes_and_determinism():
    tokens = torch.randint(TOKEN_OFFSET, 4**3 + TOKEN_OFFSET, (5, 100), dtype=torch.int16)
    n_tok = torch.tensor([100, 80, 60, 10, 5])
    cfg = DnaViewConfig(
        crop_min=30, crop_max=90, disjoint=True, rc_prob=0.5, mutation_rate=0.02, mask_rate=0.1
    )
    a = make_token_view(tokens, n_tok, 3, cfg, torch.Generator().manual_seed(0))
    b = make_token_view(tokens, n_tok, 3, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0]) and a[0].dtype == torch.int16
    assert ((a[1] >= torch.clamp(n_tok, max=10)) & (a[1] <= 30)).all()


@pytest.mark.parametrize("k", [4, 6])
def test_ragged_profile_of_real_records(k):
    rng = np.random.default_rng(0)
    strings = [
        "".join(rng.choice(list("ACGTN"), size=n, p=[0.24] * 4 + [0.04])) for n in (5, 900, 1)
    ]
    flat = np.concatenate([encode(s) for s in strings])
    offsets = np.r_[0, np.cumsum([len(s) for s in strings])]
    prof = kmer_profiles_ragged(flat, offsets, k, normalize=False)
    assert prof.shape == (3, n_canonical_kmers(k)) and prof.dtype == np.float32
    assert prof[1].sum() == sum(naive_counts(strings[1], k).values())
    assert prof[2].sum() == 0
