"""The DNA Domain object end to end on the bundled tiny data (fast: small model, few steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sciclr.config import dataset_params
from sciclr.data.dna.codes import PAD
from sciclr.data.dna.kmers import canonical_kmer_index
from sciclr.domains import get_domain
from sciclr.domains.dna import DOMAIN
from sciclr.domains.dna.model import DnaContrastiveModel
from sciclr.errors import SciclrError
from sciclr.io import load_torch, save_torch
from sciclr.losses import InfoNCE
from sciclr.views.dna import reverse_complement

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "resources" / "dna" / "tiny"
SMALL = {
    "channels": 16,
    "stem_channels": 32,
    "blocks": 2,
    "proj_hidden": 32,
    "proj_dim": 16,
    "kmer_hidden": 32,
    "d_model": 16,
    "heads": 2,
    "layers": 1,
    "ff": 32,
}


def tiny_cfg(**model) -> dict:
    return dataset_params(
        {
            "name": "tiny",
            "domain": "dna",
            "input": [str(TINY / "genomics_tiny.fasta")],
            "format": "auto",
            "labels": str(TINY / "labels.tsv"),
            "id_column": "id",
            "split_column": "split",
            "tasks": [{"column": "label", "type": "classification"}],
            "preprocess": {"min_length": 100, "max_length": 1200, "token_k": 3},
            "baselines": {"kmer_k": [2, 4]},
            "views": {"crop_min": 100, "crop_max": 300, "n_views": 2, "kmer_k": 3},
            "model": {**SMALL, **model},
        }
    )


@pytest.fixture(scope="module")
def processed():
    return DOMAIN.preprocess_shard(tiny_cfg(), 0, 1)


def test_registry_returns_the_dna_domain():
    assert get_domain("dna") is DOMAIN and DOMAIN.name == "dna"


def test_data_source_batch(processed):
    src = DOMAIN.data_source(processed.payload)
    assert len(src) == 180
    idx = torch.tensor([5, 0, 179])
    b = src.batch(idx, torch.device("cpu"))
    off = processed.payload["offsets"]
    lens = (off[idx + 1] - off[idx]).clamp(max=1200)
    assert torch.equal(b["lengths"], lens)
    assert b["codes"].shape == (3, int(lens.max())) and b["codes"].dtype == torch.uint8
    for row, i in enumerate(idx.tolist()):
        n, full = int(off[i + 1] - off[i]), processed.payload["codes"][off[i] : off[i + 1]]
        start = max(n - 1200, 0) // 2  # centred window of at most max_length
        assert torch.equal(b["codes"][row, : lens[row]], full[start : start + lens[row]])
        assert (b["codes"][row, lens[row] :] == PAD).all()
    assert b["tokens"].shape[0] == 3 and torch.equal(b["n_tokens"], lens // 3)


def test_baseline_features_are_canonical_kmer_frequencies(processed):
    feats = DOMAIN.baseline_features(processed.payload, tiny_cfg(), ["kmer2", "kmer4"])
    assert set(feats) == {"kmer2", "kmer4"}
    assert feats["kmer4"].shape == (180, 136) and feats["kmer4"].dtype == np.float32
    np.testing.assert_allclose(feats["kmer4"].sum(1), 1.0, rtol=1e-5)
    # record 0 by hand
    off = processed.payload["offsets"]
    s = processed.payload["codes"][off[0] : off[1]].numpy().astype(int)
    counts = np.zeros(136)
    table = canonical_kmer_index(4)
    for i in range(len(s) - 3):
        w = s[i : i + 4]
        if (w < 4).all():
            counts[table[((w[0] * 4 + w[1]) * 4 + w[2]) * 4 + w[3]]] += 1
    np.testing.assert_allclose(feats["kmer4"][0], counts / counts.sum(), rtol=1e-6)


@pytest.mark.parametrize(
    ("pairing", "encoder", "views"),
    [
        ("augment", "cnn", 2),
        ("augment", "cnn", 3),
        ("kmer", "cnn", 2),
        ("both", "cnn", 2),
        ("augment", "transformer", 2),
        ("kmer", "transformer", 2),
    ],
)
def test_model_forward_embed_and_a_training_step(processed, pairing, encoder, views):
    cfg = tiny_cfg(pairing=pairing, encoder=encoder)
    cfg["views"]["n_views"] = views
    torch.manual_seed(0)
    model = DOMAIN.build_model(processed.payload, cfg)
    assert isinstance(model, DnaContrastiveModel)
    src = DOMAIN.data_source(processed.payload)
    batch = src.batch(torch.arange(24), torch.device("cpu"))
    z = model(batch, torch.Generator().manual_seed(0))
    v = {"augment": views, "kmer": 2, "both": views + 1}[pairing]
    assert z.shape == (v, 24, 16)
    loss = InfoNCE(0.2)(z)
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        e = model.embed(batch)
    assert e.shape == (24, model.encoder.out_dim)


def test_forward_is_deterministic_under_a_seed(processed):
    torch.manual_seed(0)
    model = DOMAIN.build_model(processed.payload, tiny_cfg(pairing="both")).eval()
    batch = DOMAIN.data_source(processed.payload).batch(torch.arange(16), torch.device("cpu"))
    with torch.no_grad():
        a = model(batch, torch.Generator().manual_seed(3))
        b = model(batch, torch.Generator().manual_seed(3))
        c = model(batch, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_embedding_is_strand_invariant_through_the_domain(processed):
    torch.manual_seed(0)
    model = DOMAIN.build_model(processed.payload, tiny_cfg()).eval()
    batch = DOMAIN.data_source(processed.payload).batch(torch.arange(40), torch.device("cpu"))
    flipped = dict(batch, codes=reverse_complement(batch["codes"], batch["lengths"]))
    with torch.no_grad():
        torch.testing.assert_close(model.embed(batch), model.embed(flipped), rtol=0, atol=1e-5)


def test_rc_invariance_of_the_embedding_only(processed):
    """rc_invariant: "embed" trains on single strands but embeds symmetrised."""
    torch.manual_seed(0)
    model = DOMAIN.build_model(processed.payload, tiny_cfg(rc_invariant="embed"))
    assert model.encoder.rc_invariant and not model.rc_train
    model.eval()
    batch = DOMAIN.data_source(processed.payload).batch(torch.arange(20), torch.device("cpu"))
    flipped = dict(batch, codes=reverse_complement(batch["codes"], batch["lengths"]))
    with torch.no_grad():
        torch.testing.assert_close(model.embed(batch), model.embed(flipped), rtol=0, atol=1e-5)
        one = model.encoder(batch["codes"], batch["lengths"], symmetrize=False)
        other = model.encoder(flipped["codes"], batch["lengths"], symmetrize=False)
    assert (one - other).abs().max() > 1e-3
    with pytest.raises(SciclrError, match="rc_invariant"):
        DOMAIN.build_model(processed.payload, tiny_cfg(rc_invariant="sometimes"))


def test_short_training_lowers_the_loss(processed):
    torch.manual_seed(0)
    cfg = tiny_cfg(rc_invariant=False)
    cfg["views"].update(crop_min=100, crop_max=150)
    model = DOMAIN.build_model(processed.payload, cfg)
    src = DOMAIN.data_source(processed.payload)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn, g = InfoNCE(0.2), torch.Generator().manual_seed(0)
    batch = src.batch(torch.arange(0, 180, 6), torch.device("cpu"))
    losses = []
    for _ in range(10):
        loss = loss_fn(model(batch, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1


def test_payload_survives_save_and_load(tmp_path, processed):
    save_torch(tmp_path / "payload.pt", processed.payload)
    back = load_torch(tmp_path / "payload.pt")
    src_a, src_b = DOMAIN.data_source(processed.payload), DOMAIN.data_source(back)
    idx = torch.tensor([3, 1, 4])
    for key, val in src_a.batch(idx, "cpu").items():
        assert torch.equal(val, src_b.batch(idx, "cpu")[key]), key


def test_bad_model_config_is_a_clear_error(processed):
    with pytest.raises(SciclrError, match=r"model\.encoder"):
        DOMAIN.build_model(processed.payload, tiny_cfg(encoder="lstm"))
    with pytest.raises(SciclrError, match=r"model\.pairing"):
        DOMAIN.build_model(processed.payload, tiny_cfg(pairing="mixup"))


def test_length_sorted_embedding_equals_unsorted(processed):
    """embed() batches by length for speed; the result is that of any other batching."""
    from sciclr.train.embed import embed

    class Unsorted:  # the same source without item_sizes: embedded in the given order
        def __init__(self, src):
            self.src = src

        def __len__(self):
            return len(self.src)

        def batch(self, idx, device):
            return self.src.batch(idx, device)

    torch.manual_seed(0)
    model = DOMAIN.build_model(processed.payload, tiny_cfg())
    src = DOMAIN.data_source(processed.payload)
    sizes = src.item_sizes()
    assert sizes.shape == (180,) and sizes.max() <= 1200 and np.ptp(sizes) > 0
    idx = np.random.default_rng(0).permutation(180)[:150]
    cpu = torch.device("cpu")
    sorted_ = embed(model, src, idx, cpu, batch_size=32)
    plain = embed(model, Unsorted(src), idx, cpu, batch_size=32)
    one = embed(model, Unsorted(src), idx[:1], cpu, batch_size=1)
    np.testing.assert_allclose(sorted_, plain, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sorted_[:1], one, rtol=1e-4, atol=1e-5)


def test_embedding_streamed_in_chunks_equals_one_chunk(processed):
    """embed_blocks() yields the rows in the given order, a chunk at a time (each sorted by
    length inside): the same embeddings as one chunk, whatever the chunk size."""
    from sciclr.train.embed import embed, embed_blocks

    torch.manual_seed(0)
    model = DOMAIN.build_model(processed.payload, tiny_cfg())
    src = DOMAIN.data_source(processed.payload)
    idx = np.random.default_rng(1).permutation(180)[:101]
    cpu = torch.device("cpu")
    whole = embed(model, src, idx, cpu, batch_size=16)
    blocks = list(embed_blocks(model, src, idx, cpu, batch_size=16, chunk_items=40))
    assert [len(b) for b in blocks] == [40, 40, 21]
    np.testing.assert_allclose(np.concatenate(blocks), whole, rtol=1e-4, atol=1e-5)
    # a chunk sorts only its own items: a row's place does not depend on the other chunks
    first = list(embed_blocks(model, src, idx[:40], cpu, batch_size=16, chunk_items=40))
    np.testing.assert_array_equal(first[0], blocks[0])
    with pytest.raises(ValueError, match="chunk_items"):
        next(embed_blocks(model, src, idx, cpu, chunk_items=0))


def test_every_pairing_says_what_its_views_share():
    for pairing, n in (("augment", 1), ("kmer", 1), ("both", 2)):
        cfg = dataset_params({"domain": "dna", "model": {"pairing": pairing}})
        described = DOMAIN.describe_pairing(cfg)
        assert len(described) == n and all("share" in text for _, text in described)
    kmer = DOMAIN.describe_pairing(dataset_params({"domain": "dna", "views": {"kmer_k": 5}}))
    assert "5-mer composition only" in kmer[0][1]
