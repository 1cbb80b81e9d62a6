"""DNA ingest on the awkward corpus (tests/data/dna) and the bundled tiny data."""

from __future__ import annotations

import gzip
import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from Bio.SeqIO.FastaIO import SimpleFastaParser
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.config import dataset_params
from sciclr.data.dna import decode, encode, merge_dna, preprocess_dna_shard, tokenize
from sciclr.errors import SciclrError
from sciclr.io import load_torch, save_torch

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "dna"
TINY = ROOT / "resources" / "dna" / "tiny"


def _cfg(*inputs: Path | str, **extra) -> dict:
    cfg = {
        "name": "t",
        "domain": "dna",
        "input": [str(p) for p in inputs],
        "format": "auto",
        "labels": str(CORPUS / "labels.tsv"),
        "id_column": "id",
        "split_column": "split",
        "tasks": [{"column": "label", "type": "classification"}],
        "preprocess": {"min_length": 100},
    }
    cfg.update(extra)
    if cfg.get("tasks") == []:  # no labels: the key is left out, as for data to embed only
        del cfg["tasks"]
    return dataset_params(cfg)


def _seqs(p) -> list[str]:
    """Decoded sequences of a Processed, in row order."""
    codes, off = p.payload["codes"].numpy(), p.payload["offsets"].numpy()
    return [decode(codes[a:b]) for a, b in itertools.pairwise(off)]


def _fasta(path: Path) -> dict[str, str]:
    """id -> sequence, first occurrence of an id only."""
    out: dict[str, str] = {}
    with open(path) as fh:
        for t, s in SimpleFastaParser(fh):
            out.setdefault(t.split()[0] if t.strip() else "", s)
    return out


@pytest.fixture(scope="module")
def awkward():
    return preprocess_dna_shard(_cfg(CORPUS / "awkward.fasta"))


def test_awkward_kept_records_and_order(awkward):
    assert awkward.records["id"].tolist() == [
        "rec_ok1",
        "rec_soft",
        "rec_iupac",
        "rec_gaps",
        "rec_rna",
        "rec_wrapped",
    ]
    assert awkward.records["order"].tolist() == [0, 1, 2, 3, 9, 12]
    assert awkward.records["label"].tolist() == ["A", "B", "A", "B", "B", "B"]
    assert awkward.records["split"].tolist() == ["train", "val", "test", "train", "val", "train"]
    assert list(awkward.records.columns) == ["id", "label", "split", "order"]


def test_awkward_every_drop_has_a_reason(awkward):
    rej = awkward.rejects.set_index("id", drop=False)
    reasons = dict(zip(rej["id"], rej["reason"], strict=True))
    assert list(awkward.rejects.columns) == ["id", "source", "reason"]
    assert reasons["rec_empty"] == "empty sequence"
    assert reasons["rec_ok1"].startswith("duplicate id: first seen as record 1 of")
    assert reasons["rec_short"] == "too short: 50 < min_length 100"
    assert reasons["rec_nolabel"] == "id not in label table"
    assert reasons["rec_protein"].startswith("not DNA: letters 'EFILPQ'")
    assert reasons["rec_many_n"].startswith("too many N: 0.667")
    assert reasons[""].startswith("empty id")
    # the source names the file and the record number in it (1-based)
    src = dict(zip(rej["id"], rej["source"], strict=True))
    assert src["rec_short"] == f"{CORPUS / 'awkward.fasta'}:7"
    assert awkward.rejects["id"].tolist() == [
        "rec_empty",
        "rec_ok1",
        "rec_short",
        "rec_nolabel",
        "rec_protein",
        "rec_many_n",
        "",
    ]


def test_awkward_counts(awkward):
    c = awkward.counts
    assert (c["in"], c["out"], c["rejected"]) == (13, 6, 7)
    assert c["in"] == c["out"] + c["rejected"]
    for key in [
        "empty_id",
        "duplicate_id",
        "empty_sequence",
        "not_dna",
        "too_short",
        "too_many_n",
        "missing_label_row",
    ]:
        assert c[f"rejected_{key}"] == 1, key
    assert c["soft_masked_bases"] == 50 + 4  # a 50-base lower-case run + 'nnnn'
    assert c["iupac_bases"] == 6  # R Y S W K M
    assert c["n_bases"] == 5
    assert c["gap_characters"] == 6  # '--', '---', '*'
    assert c["u_bases"] == 66
    assert c["bases_out"] == 6 * 300


def test_awkward_sequences_cleaned_by_rule(awkward):
    raw = _fasta(CORPUS / "awkward.fasta")
    got = dict(zip(awkward.records["id"], _seqs(awkward), strict=True))
    assert got["rec_ok1"] == raw["rec_ok1"]  # the first occurrence won
    assert got["rec_soft"] == raw["rec_soft"].upper()
    iupac = raw["rec_iupac"].upper()
    assert got["rec_iupac"] == "".join("N" if ch not in "ACGT" else ch for ch in iupac)
    assert got["rec_iupac"].count("N") == 11
    assert got["rec_gaps"] == raw["rec_gaps"].replace("-", "").replace("*", "")
    assert got["rec_rna"] == raw["rec_rna"].replace("U", "T")
    assert len(got["rec_wrapped"]) == 300 and set(got["rec_wrapped"]) <= set("ACGT")


@pytest.mark.parametrize("name", ["clean_crlf.fasta", "clean.fasta.gz", "clean.fasta.bgz"])
def test_compressed_and_crlf_equal_plain(name):
    plain = preprocess_dna_shard(_cfg(CORPUS / "clean.fasta"))
    other = preprocess_dna_shard(_cfg(CORPUS / name))
    assert plain.counts["out"] == 6
    assert torch.equal(plain.payload["codes"], other.payload["codes"])
    assert torch.equal(plain.payload["offsets"], other.payload["offsets"])
    assert plain.records.equals(other.records)
    assert _seqs(plain) == list(_fasta(CORPUS / "clean.fasta").values())


@pytest.mark.parametrize("name", ["clean.gb", "clean.gb.gz"])
def test_genbank(name):
    p = preprocess_dna_shard(_cfg(CORPUS / name, format="auto"))
    assert p.records["id"].tolist() == ["gb_0", "gb_1", "gb_2"]
    tiny = list(_fasta(TINY / "genomics_tiny.fasta").values())
    assert _seqs(p) == [tiny[20 + i][:350] for i in range(3)]


def test_several_inputs_have_global_order():
    p = preprocess_dna_shard(_cfg(CORPUS / "clean.gb", CORPUS / "clean.fasta"))
    assert p.records["id"].tolist()[:4] == ["gb_0", "gb_1", "gb_2", "clean_0"]
    assert p.records["order"].tolist() == list(range(9))


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("protein.fasta", "does not look like DNA"),
        ("structure.cif", "looks like a CIF crystal structure"),
        ("empty.fasta", "file is empty"),
        ("reads.fastq", "looks like FASTQ"),
        ("truncated.fasta.gz", "cannot decompress"),
        ("missing.fasta", "cannot open"),
    ],
)
def test_wrong_files_give_one_clear_error(name, fragment):
    with pytest.raises(SciclrError) as info:
        preprocess_dna_shard(_cfg(CORPUS / name))
    msg = str(info.value)
    assert name in msg and fragment in msg
    assert "\n" not in msg


def test_format_mismatch_and_unknown_format():
    with pytest.raises(SciclrError, match="configured format 'genbank'"):
        preprocess_dna_shard(_cfg(CORPUS / "clean.fasta", format="genbank"))
    with pytest.raises(SciclrError, match=r"format: 'fastq' is not one of \['auto', 'fasta'"):
        _cfg(CORPUS / "clean.fasta", format="fastq")


def test_truncated_late_in_a_gzip(tmp_path):
    data = gzip.compress(((CORPUS / "clean.fasta").read_text() * 200).encode())
    bad = tmp_path / "cut.fasta.gz"
    bad.write_bytes(data[: len(data) - 40])
    with pytest.raises(SciclrError, match=r"cut\.fasta\.gz: cannot decompress"):
        preprocess_dna_shard(_cfg(bad))


def test_classic_mac_line_ends_and_comment_lines(tmp_path):
    text = (CORPUS / "clean.fasta").read_text()
    mac = tmp_path / "mac.fasta"
    mac.write_bytes(text.replace("\n", "\r").encode())
    commented = tmp_path / "pearson.fasta"
    commented.write_text(";a comment line before the first record\n" + text)
    plain = preprocess_dna_shard(_cfg(CORPUS / "clean.fasta"))
    for path in (mac, commented):
        other = preprocess_dna_shard(_cfg(path))
        assert torch.equal(plain.payload["codes"], other.payload["codes"])
        assert other.records["id"].tolist() == plain.records["id"].tolist()


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda t: t[:900], "record 2 (after 'gb_0')"),
        (lambda t: t.replace("350 bp", "xx", 1), "record 1"),
    ],
)
def test_malformed_genbank_is_a_clear_error(tmp_path, edit, where):
    bad = tmp_path / "bad.gb"
    bad.write_text(edit((CORPUS / "clean.gb").read_text()))
    with pytest.raises(SciclrError) as info:
        preprocess_dna_shard(_cfg(bad))
    msg = str(info.value)
    assert msg.startswith(f"{bad}: {where}: cannot parse genbank")
    assert "\n" not in msg


def test_without_label_table_records_have_id_and_order():
    cfg = _cfg(CORPUS / "awkward.fasta", labels=None, tasks=[], split_column=None)
    p = preprocess_dna_shard(cfg)
    assert list(p.records.columns) == ["id", "order"]
    assert "rec_nolabel" in p.records["id"].tolist()
    assert p.counts["rejected_missing_label_row"] == 0


def test_tiny_bundled_data():
    cfg = _cfg(TINY / "genomics_tiny.fasta", labels=str(TINY / "labels.tsv"))
    p = preprocess_dna_shard(cfg)
    assert (p.counts["in"], p.counts["out"], p.counts["rejected"]) == (180, 180, 0)
    assert p.counts["n_bases"] == 321 and p.counts["iupac_bases"] == 4
    labels = pd.read_csv(TINY / "labels.tsv", sep="\t")
    assert p.records["id"].tolist() == labels["id"].tolist()
    assert p.records["label"].tolist() == labels["label"].tolist()
    lengths = np.diff(p.payload["offsets"].numpy())
    assert lengths.tolist() == labels["length"].tolist()
    assert _seqs(p)[5] == list(_fasta(TINY / "genomics_tiny.fasta").values())[5].upper()


@pytest.mark.parametrize("n_shards", [2, 3, 5])
def test_sharded_equals_unsharded(n_shards):
    """Includes a duplicate id whose copies land in different shards (records 1 and 6)."""
    cfg = _cfg(CORPUS / "awkward.fasta", CORPUS / "clean.fasta", CORPUS / "clean.gb")
    cfg["preprocess"]["token_k"] = 4
    one = preprocess_dna_shard(cfg)
    parts = [preprocess_dna_shard(cfg, s, n_shards) for s in range(n_shards)]
    assert sum(p.counts["in"] for p in parts) == one.counts["in"]
    merged = merge_dna(parts, cfg)
    for key in ["codes", "offsets", "tokens", "token_offsets"]:
        assert torch.equal(merged.payload[key], one.payload[key]), key
    assert merged.payload["ids"] == one.payload["ids"]
    pd.testing.assert_frame_equal(merged.records, one.records)
    pd.testing.assert_frame_equal(merged.rejects, one.rejects)
    assert merged.counts == one.counts


def test_merge_rejects_ids_repeated_across_parts():
    cfg = _cfg(CORPUS / "clean.fasta")
    a = preprocess_dna_shard(cfg)
    b = preprocess_dna_shard(cfg)
    b.records["order"] += 100
    merged = merge_dna([a, b], cfg)
    assert merged.records["id"].tolist() == a.records["id"].tolist()
    assert torch.equal(merged.payload["codes"], a.payload["codes"])
    assert (merged.rejects["reason"] == "duplicate id: seen in another shard").sum() == 6
    assert merged.counts["rejected_duplicate_id"] == 6


def test_payload_roundtrips_with_weights_only(tmp_path):
    cfg = _cfg(CORPUS / "awkward.fasta", model={"encoder": "transformer"})
    p = preprocess_dna_shard(cfg)
    save_torch(tmp_path / "p.pt", p.payload)
    back = load_torch(tmp_path / "p.pt")
    assert back["ids"] == p.payload["ids"]
    assert back["codes"].dtype == torch.uint8 and back["tokens"].dtype == torch.int16
    assert torch.equal(back["codes"], p.payload["codes"])
    assert back["token_k"] == 4 and back["max_length"] == 4096


def test_tokens_stored_only_when_needed(awkward):
    assert "tokens" not in awkward.payload  # default CNN: no tokens
    cfg = _cfg(CORPUS / "clean.fasta", model={"encoder": "transformer"})
    p = preprocess_dna_shard(cfg)
    assert p.payload["token_k"] == 4
    assert p.payload["token_offsets"].tolist() == [0, 100, 200, 300, 400, 500, 600]
    cfg["preprocess"]["token_k"] = 3
    assert preprocess_dna_shard(cfg).payload["token_offsets"][-1] == 6 * 133
    cfg["preprocess"]["token_k"] = 9
    with pytest.raises(SciclrError, match="token_k"):
        preprocess_dna_shard(cfg)


def test_encode_decode_and_tokenize():
    assert encode("ACGTNacgtnRYU-*").tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4, 3]
    assert decode(encode("acgTTn")) == "ACGTTN"
    with pytest.raises(ValueError, match="not a nucleotide"):
        encode("ACGTQ")
    codes = encode("ACGTACGNAC" + "TTTT")
    tokens, off = tokenize(codes, np.array([0, 10, 14]), 3)
    # record 1: ACG TAC GNA (C dropped); record 2: TTT (T dropped)
    assert off.tolist() == [0, 3, 4]
    acg, tac, ttt = 0 * 16 + 1 * 4 + 2, 3 * 16 + 0 * 4 + 1, 63
    assert tokens.tolist() == [acg + 2, tac + 2, 1, ttt + 2]


def test_preprocess_does_not_touch_inputs(tmp_path):
    src = tmp_path / "in.fasta"
    shutil.copyfile(CORPUS / "awkward.fasta", src)
    before = src.read_bytes()
    preprocess_dna_shard(_cfg(src))
    assert src.read_bytes() == before


@settings(max_examples=60, deadline=None)
@given(
    lens=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    seed=st.integers(0, 2**16),
    block=st.integers(1, 64),
)
def test_gather_ragged_equals_concatenating_the_rows_in_order(lens, seed, block):
    from sciclr.data.dna.ingest import gather_ragged

    rng = np.random.default_rng(seed)
    lens = np.asarray(lens)
    flat = rng.integers(0, 200, size=int(lens.sum())).astype(np.uint8)
    bounds = np.r_[0, np.cumsum(lens)]
    rows = [flat[bounds[i] : bounds[i + 1]] for i in range(len(lens))]
    perm = rng.permutation(len(lens))[: rng.integers(1, len(lens) + 1)]
    values, offsets = gather_ragged(flat, lens, perm, block=block)
    np.testing.assert_array_equal(values, np.concatenate([rows[i] for i in perm]))
    np.testing.assert_array_equal(offsets, np.r_[0, np.cumsum(lens[perm])])
    same, off = gather_ragged(flat, lens, np.arange(len(lens)), block=block)
    assert np.shares_memory(same, flat) or len(flat) == 0  # the identity is not copied
    np.testing.assert_array_equal(off, bounds)
