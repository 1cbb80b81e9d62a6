"""Inputs never lose or mangle a record: each class of awkward input is handled by rule, and over
all of them every record is either kept or listed in rejects.tsv (kept + rejected = in).

1. invisible prefixes (byte-order marks, blank lines, indentation) cost no record;
2. a shard without a single edge is valid (its structures are rejected as isolated);
3. a POSCAR's coordinate lines are counted against its counts line;
4. label rows that match no record are counted, once, however many shards;
5. a CIF with several data blocks is several records (sharding stays exact);
6. every crystal reject reason is specific and keeps pymatgen's message;
7. the majority-occupancy tie-break is stated in the schema and independent of row order;
8. over all of these: nothing missing from both the records and the rejects.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from sciclr import pipeline
from sciclr.config import dataset_params
from sciclr.data import crystals
from sciclr.data.crystal_io import RawRecord, Reject, list_inputs, parse_structure
from sciclr.data.dna import merge_dna, preprocess_dna_shard
from sciclr.data.dna.files import read_records
from sciclr.errors import SciclrError

HERE = Path(__file__).parent
DNA = HERE / "dna"
BAD = HERE / "crystals" / "bad"
REPO = HERE.parents[1]
TINY_CSV = REPO / "resources" / "materials" / "tiny" / "materials.csv"
BOM = b"\xef\xbb\xbf"
CLEAN_IDS = [f"clean_{i}" for i in range(6)]
TASKS = [{"column": "formation_energy_per_atom", "type": "regression"}]


def dna_cfg(*inputs: Path | str, **extra) -> dict:
    cfg = {
        "name": "t",
        "domain": "dna",
        "input": [str(p) for p in inputs],
        "labels": str(DNA / "labels.tsv"),
        "id_column": "id",
        "split_column": "split",
        "tasks": [{"column": "label", "type": "classification"}],
        "preprocess": {"min_length": 100},
        **extra,
    }
    return dataset_params(cfg)


def crystal_cfg(*inputs: Path | str, **extra) -> dict:
    cfg = {
        "name": "m",
        "domain": "materials",
        "input": [str(p) for p in inputs],
        "format": "auto",
        **extra,
    }
    return dataset_params(cfg)


def bad_cfg(**pre) -> dict:
    return crystal_cfg(
        BAD,
        labels=str(HERE / "crystals" / "bad_labels.csv"),
        id_column="material_id",
        split_column="split",
        tasks=TASKS,
        preprocess=pre,
    )


def _all_accounted(out, expected_ids) -> None:
    """Every expected record is kept or rejected, and the counts add up."""
    kept, rejected = list(out.records["id"]), list(out.rejects["id"])
    missing = set(expected_ids) - set(kept) - set(rejected)
    assert not missing, f"lost without a trace: {sorted(missing)}"
    assert len(kept) + len(rejected) == len(expected_ids)
    c = out.counts
    assert (c["in"], c["out"], c["rejected"]) == (len(expected_ids), len(kept), len(rejected))


# --- 1. invisible prefixes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix", [BOM, b"\n\n", b"  ", b"\t", BOM + b"\r\n", BOM + b" \n\n", b"\n \t\n  "]
)
def test_fasta_prefix_before_the_first_header_costs_no_record(tmp_path, prefix):
    plain = preprocess_dna_shard(dna_cfg(DNA / "clean.fasta"))
    path = tmp_path / "prefixed.fasta"
    path.write_bytes(prefix + (DNA / "clean.fasta").read_bytes())
    other = preprocess_dna_shard(dna_cfg(path))
    assert other.records["id"].tolist() == CLEAN_IDS
    assert torch.equal(plain.payload["codes"], other.payload["codes"])
    assert torch.equal(plain.payload["offsets"], other.payload["offsets"])
    assert len(other.rejects) == 0


def test_fasta_bom_and_indentation_inside_the_file():
    """invisible_prefixes.fasta: BOM + blank lines first, an indented header, a mid-file BOM."""
    ids, _ = read_records(DNA / "invisible_prefixes.fasta")
    assert ids == CLEAN_IDS
    plain = preprocess_dna_shard(dna_cfg(DNA / "clean.fasta"))
    other = preprocess_dna_shard(dna_cfg(DNA / "invisible_prefixes.fasta"))
    assert torch.equal(plain.payload["codes"], other.payload["codes"])  # no BOM byte in a sequence
    assert other.counts["rejected"] == 0


def test_mixed_line_ends_cost_no_record(tmp_path):
    """Old-Mac line ends (a lone \\r) in a file that also has a \\n somewhere."""
    text = (DNA / "clean.fasta").read_bytes()
    path = tmp_path / "mixed.fasta"
    path.write_bytes(text.replace(b"\n", b"\r").replace(b"\r", b"\n", 3))
    plain = preprocess_dna_shard(dna_cfg(DNA / "clean.fasta"))
    other = preprocess_dna_shard(dna_cfg(path))
    assert other.records["id"].tolist() == CLEAN_IDS
    assert torch.equal(plain.payload["codes"], other.payload["codes"])


def test_a_gt_inside_a_header_line_is_not_a_header(tmp_path):
    path = tmp_path / "gt.fasta"
    path.write_bytes((DNA / "clean.fasta").read_bytes().replace(b"clean record", b"a >b c", 1))
    assert read_records(path)[0] == CLEAN_IDS


@pytest.mark.parametrize("prefix", [BOM, b"\n\n", BOM + b"\n", b"  "])
def test_genbank_prefix_costs_no_record(tmp_path, prefix):
    path = tmp_path / "prefixed.gb"
    path.write_bytes(prefix + (DNA / "clean.gb").read_bytes())
    plain = preprocess_dna_shard(dna_cfg(DNA / "clean.gb"))
    other = preprocess_dna_shard(dna_cfg(path))
    assert other.records["id"].tolist() == ["gb_0", "gb_1", "gb_2"]
    assert torch.equal(plain.payload["codes"], other.payload["codes"])


def test_genbank_bom_file_and_concatenated_files(tmp_path):
    assert read_records(DNA / "bom.gb")[0] == ["gb_0", "gb_1", "gb_2"]
    gb = (DNA / "clean.gb").read_bytes()
    both = tmp_path / "both.gb"
    both.write_bytes(BOM + gb + BOM + gb.replace(b"gb_", b"gx_"))
    ids, _ = read_records(both)
    assert ids == ["gb_0", "gb_1", "gb_2", "gx_0", "gx_1", "gx_2"]


def test_dna_label_table_with_a_bom():
    plain = preprocess_dna_shard(dna_cfg(DNA / "awkward.fasta"))
    bom = preprocess_dna_shard(dna_cfg(DNA / "awkward.fasta", labels=str(DNA / "labels_bom.tsv")))
    pd.testing.assert_frame_equal(plain.records, bom.records)
    pd.testing.assert_frame_equal(plain.rejects, bom.rejects)


def test_crystal_label_table_with_a_bom(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_bytes(BOM + (HERE / "crystals" / "bad_labels.csv").read_bytes())
    cfg = bad_cfg()
    plain = crystals.preprocess_shard(cfg, 0, 1)
    cfg["labels"] = str(table)
    bom = crystals.preprocess_shard(cfg, 0, 1)
    pd.testing.assert_frame_equal(plain.records, bom.records)
    assert bom.records["formation_energy_per_atom"].notna().all()


def _nacl() -> str:
    return (BAD / "good_nacl.cif").read_text()


def _si() -> str:
    return (BAD / "si" / "POSCAR").read_text()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bom.cif", BOM + _nacl().split("\n", 1)[1].encode()),  # BOM right before data_
        ("blank.cif", b"\n\n  \n" + _nacl().encode()),
        ("POSCAR", BOM + _si().encode()),
        ("POSCAR", b"\n\n" + _si().encode()),  # blank lines before the comment line
        ("POSCAR", b"  \n" + BOM + b"  " + _si().encode()),
    ],
)
def test_crystal_text_prefix_costs_no_record(tmp_path, name, data):
    path = tmp_path / "x" / name
    path.parent.mkdir()
    path.write_bytes(data)
    (record,) = list_inputs(crystal_cfg(path))[0]
    p = parse_structure(record)
    assert len(p.z) == (8 if name.endswith(".cif") else 2)


def test_poscar_with_an_empty_comment_line_still_reads():
    text = "\n" + _si().split("\n", 1)[1]  # line 1 empty (the comment), line 2 the scale
    p = parse_structure(RawRecord(0, "si", "si", "poscar", text=text))
    assert p.z.tolist() == [14, 14]


def test_csv_cell_with_a_bom(tmp_path):
    table = tmp_path / "t.csv"
    pd.DataFrame({"material_id": ["a"], "cif": ["\ufeff" + _nacl().split("\n", 1)[1]]}).to_csv(
        table, index=False
    )
    out = crystals.preprocess_shard(crystal_cfg(table, id_column="material_id"), 0, 1)
    assert out.records["id"].tolist() == ["a"]


# --- 2. a shard without a single edge ---------------------------------------------------------


def _valid_empty(out) -> None:
    p = out.payload
    assert out.counts["out"] == 0 and len(out.records) == 0 and p["ids"] == []
    assert p["atom_ptr"].tolist() == [0] and p["edge_ptr"].tolist() == [0]
    assert p["edge_index"].shape == (2, 0) and p["edge_vec"].shape == (0, 3)
    assert p["lattice"].shape == (0, 3, 3) and p["composition"].shape == (0, 118)


@pytest.mark.parametrize("cap", [12, 0])
def test_a_single_isolated_atom_is_rejected_not_a_crash(cap):
    cfg = crystal_cfg(BAD / "isolated_atom.cif", preprocess={"max_neighbors": cap})
    out = crystals.preprocess_shard(cfg, 0, 1)
    _valid_empty(out)
    assert out.rejects["reason"].tolist() == [
        "isolated atom(s): site(s) [0] have no neighbour within 6.0 Å"
    ]
    assert out.counts["rejected_isolated_atom"] == 1
    _valid_empty(crystals.merge([out], cfg))


def test_a_tiny_cutoff_rejects_everything_as_isolated():
    cfg = crystal_cfg(
        TINY_CSV, cif_column="cif", id_column="material_id", preprocess={"cutoff": 0.5}
    )
    one = crystals.preprocess_shard(cfg, 0, 1)
    _valid_empty(one)
    assert one.counts["rejected_isolated_atom"] == one.counts["in"] == 63
    three = crystals.merge([crystals.preprocess_shard(cfg, s, 3) for s in range(3)], cfg)
    _valid_empty(three)
    pd.testing.assert_frame_equal(one.rejects, three.rejects)


def test_an_edgeless_shard_gathers_with_the_others(tmp_path):
    """Shard 0 of 2 holds only isolated atoms (no edge at all); gather merges it."""
    folder = tmp_path / "cifs"
    folder.mkdir()
    good = _nacl()
    kcl = (BAD / "two_blocks.cif").read_text().split("\ndata_noatoms")[0]
    for name, text in [
        ("a_iso", (BAD / "isolated_atom.cif").read_text()),
        ("b_nacl", good),
        ("c_iso", (BAD / "isolated_atom.cif").read_text().replace("Ar Ar1", "Kr Kr1")),
        ("d_kcl", kcl),
    ]:
        (folder / f"{name}.cif").write_text(text)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "id,formation_energy_per_atom,split\n"
        "a_iso,0,train\nb_nacl,-2,train\nc_iso,0,train\nd_kcl,-2,test\n"
    )
    params = {
        "name": "edgeless",
        "domain": "materials",
        "input": [str(folder)],
        "labels": str(labels),
        "id_column": "id",
        "split_column": "split",
        "tasks": TASKS,
    }
    shards = [tmp_path / f"shard{i}" for i in range(2)]
    for i, d in enumerate(shards):
        pipeline.preprocess_shard(params, i, 2, d)
    c0 = json.loads((shards[0] / "counts.json").read_text())
    assert (c0["in"], c0["out"], c0["edges"]) == (2, 0, 0)
    pipeline.gather(params, shards, tmp_path / "processed")
    s = json.loads((tmp_path / "processed" / "summary.json").read_text())
    assert (s["in"], s["out"], s["rejected"]) == (4, 2, 2)
    assert s["rejected_isolated_atom"] == 2
    records = pipeline.read_records(tmp_path / "processed")
    assert records["id"].tolist() == ["b_nacl", "d_kcl"]


# --- 3. POSCAR coordinate lines against the counts line --------------------------------------

_GAAS = (BAD / "gaas" / "CONTCAR").read_text()


def _drop_line(text: str, index: int) -> str:
    lines = text.split("\n")
    return "\n".join(lines[:index] + lines[index + 1 :])


@pytest.mark.parametrize(
    ("text", "promised", "found"),
    [
        (_drop_line(_si(), -2), 2, 1),  # the last coordinate line missing
        (_si() + "   0.5 0.5 0.5 Si\n", 2, 3),  # one more than promised: pymatgen drops it
        (_si().replace("Si\n2\ndirect", "2\ndirect"), 2, 2),  # VASP 4 (no species line): fine
        (_drop_line(_si().replace("Si\n2\ndirect", "2\ndirect"), -2), 2, 1),
        (_drop_line(_GAAS.replace("1 1\ndirect", "1 1\nSelective dynamics\ndirect"), -2), 2, 1),
        (_GAAS.replace("1 1\n", "1 2\n"), 3, 2),
        (_drop_line(_GAAS, -2) + "\n  0 0 0\n  0 0 0\n", 2, 1),  # velocities are not positions
        (_si() + "\n  0.0 0.0 0.0\n  0.0 0.0 0.0\n", 2, 2),  # a velocities block: fine
    ],
)
def test_poscar_coordinate_lines_checked_against_counts(text, promised, found):
    record = RawRecord(0, "p", "p", "poscar", text=text)
    if promised == found:
        assert len(parse_structure(record).z) == promised
        return
    with pytest.raises(Reject) as info:
        parse_structure(record)
    assert str(info.value) == (
        f"POSCAR: counts line promises {promised} atoms, found {found} coordinate lines"
    )


def test_poscar_without_element_symbols_is_rejected_not_renamed():
    text = _si().replace("Si\n2\ndirect", "2\ndirect").replace(" Si\n", "\n")
    with pytest.raises(Reject, match=r"^unknown element symbols in POSCAR: .*\(pymatgen: "):
        parse_structure(RawRecord(0, "p", "p", "poscar", text=text))


def test_broken_poscar_header_keeps_pymatgens_message():
    with pytest.raises(Reject, match=r"^unparsable POSCAR: could not convert string to float"):
        parse_structure(RawRecord(0, "p", "p", "poscar", text=(BAD / "POSCAR_broken").read_text()))


# --- 4. label rows without a record ----------------------------------------------------------


@pytest.fixture
def dna_orphans(tmp_path):
    """labels.tsv plus three rows whose ids are in no input file."""
    table = tmp_path / "labels.tsv"
    extra = "".join(f"ghost_{i}\tA\ttrain\n" for i in range(3))
    table.write_text((DNA / "labels.tsv").read_text() + extra)
    return table


def test_dna_label_rows_without_record_counted_once(dna_orphans, caplog):
    inputs = (DNA / "awkward.fasta", DNA / "clean.fasta", DNA / "clean.gb")
    cfg = dna_cfg(*inputs, labels=str(dna_orphans))
    with caplog.at_level(logging.WARNING):
        one = preprocess_dna_shard(cfg)
    assert one.counts["label_rows_without_record"] == 3
    assert "3 label row(s) match no input record, e.g. 'ghost_0', 'ghost_1', 'ghost_2'" in (
        caplog.text
    )
    # rejected records still have a record: rec_empty (rejected) is not counted
    for n in (2, 3, 5):
        parts = [preprocess_dna_shard(cfg, s, n) for s in range(n)]
        assert sum(p.counts["label_rows_without_record"] for p in parts) == 3
        assert merge_dna(parts, cfg).counts == one.counts
    plain = preprocess_dna_shard(dna_cfg(*inputs))
    assert plain.counts["label_rows_without_record"] == 0


def test_crystal_label_rows_without_record_counted_once():
    cfg = bad_cfg()
    one = crystals.preprocess_shard(cfg, 0, 1)
    assert one.counts["label_rows_without_record"] == 1  # no_such_structure
    for n in (2, 3):
        parts = [crystals.preprocess_shard(cfg, s, n) for s in range(n)]
        assert sum(p.counts["label_rows_without_record"] for p in parts) == 1
        assert crystals.merge(parts, cfg).counts == crystals.merge([one], cfg).counts
    # labels carried by the input table are its records: none without one
    tiny = crystal_cfg(TINY_CSV, cif_column="cif", id_column="material_id", tasks=TASKS)
    assert crystals.preprocess_shard(tiny, 0, 1).counts["label_rows_without_record"] == 0


@pytest.mark.parametrize("n_shards", [1, 3])
@pytest.mark.parametrize("domain", ["dna", "materials"])
def test_gather_sums_label_rows_without_record_over_shards(
    tmp_path, dna_orphans, domain, n_shards, caplog
):
    if domain == "dna":
        params = {
            "name": "d",
            "domain": "dna",
            "input": [str(DNA / "awkward.fasta"), str(DNA / "clean.fasta")],
            "labels": str(dna_orphans),
            "id_column": "id",
            "split_column": "split",
            "tasks": [{"column": "label", "type": "classification"}],
            "preprocess": {"min_length": 100},
        }
        want = 3 + 3  # the ghosts and gb_0..2 (clean.gb is not an input here)
    else:
        params = {
            "name": "m",
            "domain": "materials",
            "input": [str(BAD)],
            "labels": str(HERE / "crystals" / "bad_labels.csv"),
            "id_column": "material_id",
            "split_column": "split",
            "tasks": TASKS,
        }
        want = 1
    shards = [tmp_path / f"s{i}" for i in range(n_shards)]
    with caplog.at_level(logging.WARNING):
        for i, d in enumerate(shards):
            pipeline.preprocess_shard(params, i, n_shards, d)
        pipeline.gather(params, shards, tmp_path / "out")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["label_rows_without_record"] == want
    assert s["in"] == s["out"] + s["rejected"]
    assert f"{want} label row(s) match no input record" in caplog.text


# --- 5. CIFs with several data blocks --------------------------------------------------------


def _blocks_cif(*blocks: tuple[str, str]) -> str:
    """A CIF text of blocks ``(name, body)``; body = a CIF block without its data_ line."""
    return "# several blocks\n" + "\n".join(f"data_{n}\n{b}" for n, b in blocks)


def _body(text: str) -> str:
    return text.split("\n", 2)[2]  # drop the comment and the data_ line of good_nacl.cif


def test_multi_block_cif_file_gives_one_record_per_block(tmp_path):
    body = _body(_nacl())
    text = _blocks_cif(
        ("one", body),
        ("two", body.replace("_cell_length_b   5.64\n", "")),
        ("pattern_powder_pattern", "_pd_meas_2theta 10\n"),  # not a structure (pymatgen skips)
        ("three", body.replace("Cl Cl 0 0.5 0 1", "Cl Cl 0 0.5 0 1\n  Na Na9 0 0.5 0 1")),
        ("four", body.replace("5.64", "5.70")),
    )
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "multi.cif").write_text(text)
    shutil.copy(BAD / "good_nacl.cif", folder / "z_single.cif")
    cfg = crystal_cfg(folder)
    records, _ = list_inputs(cfg)
    assert [(r.order, r.id) for r in records] == [
        (0, "multi_one"),
        (1, "multi_two"),
        (2, "multi_three"),
        (3, "multi_four"),
        (4, "z_single"),  # one block: the file's id
    ]
    assert records[1].source == f"{folder / 'multi.cif'}:data_two"
    one = crystals.preprocess_shard(cfg, 0, 1)
    assert one.records["id"].tolist() == ["multi_one", "multi_four", "z_single"]
    reasons = dict(zip(one.rejects["id"], one.rejects["reason"], strict=True))
    assert reasons["multi_two"].startswith("missing cell parameter: _cell_length_b")
    assert reasons["multi_three"].startswith("two atoms on one site: Cl and Na9")
    lat = one.payload["lattice"]
    assert lat[0, 0, 0] == pytest.approx(5.64) and lat[1, 0, 0] == pytest.approx(5.70)
    _all_accounted(one, [r.id for r in records])
    for n in (2, 3, 4):  # sharding by the listed index stays exact
        merged = crystals.merge([crystals.preprocess_shard(cfg, s, n) for s in range(n)], cfg)
        pd.testing.assert_frame_equal(merged.records, one.records)
        pd.testing.assert_frame_equal(merged.rejects, one.rejects)
        assert torch.equal(merged.payload["pos"], one.payload["pos"])


def test_multi_block_csv_cell_ids_and_labels(tmp_path):
    body = _body(_nacl())
    two = _blocks_cif(("A", body), ("B", body.replace("5.64", "5.80")))
    table = tmp_path / "t.csv"
    pd.DataFrame(
        {
            "material_id": ["x", "y", "z"],
            "cif": [_nacl(), two, _nacl()],
            "formation_energy_per_atom": [1.0, 2.0, 3.0],
        }
    ).to_csv(table, index=False)
    cfg = crystal_cfg(table, id_column="material_id", tasks=TASKS)
    out = crystals.preprocess_shard(cfg, 0, 1)
    assert out.records["id"].tolist() == ["x", "y_A", "y_B", "z"]
    assert out.records["formation_energy_per_atom"].tolist() == [1.0, 2.0, 2.0, 3.0]
    for n in (2, 3):
        merged = crystals.merge([crystals.preprocess_shard(cfg, s, n) for s in range(n)], cfg)
        pd.testing.assert_frame_equal(merged.records, out.records)


def test_table_labels_follow_their_rows_after_a_folder(tmp_path):
    """Labels carried by a table join by record, also when another input comes first."""
    table = tmp_path / "t.csv"
    pd.DataFrame(
        {"material_id": ["x"], "cif": [_nacl()], "formation_energy_per_atom": [7.0]}
    ).to_csv(table, index=False)
    folder = tmp_path / "f"
    folder.mkdir()
    shutil.copy(BAD / "good_nacl.cif", folder / "g.cif")
    cfg = crystal_cfg(folder, table, id_column="material_id", tasks=TASKS)
    out = crystals.preprocess_shard(cfg, 0, 1)
    assert out.records["id"].tolist() == ["x"]
    assert out.records["formation_energy_per_atom"].tolist() == [7.0]
    assert out.rejects["reason"].tolist() == ["missing label: id not in the input table"]


# --- 6. specific reject reasons ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty file"),
        ("   \n\n", "empty file"),
        ("this is not a crystal structure\njust text\n", "not a CIF: no data_ block"),
        ("# a data_ mentioned in a comment\n_cell_length_a 4\n", "not a CIF: no data_ block"),
        (
            _nacl().replace("_cell_length_b   5.64\n", ""),
            "missing cell parameter: _cell_length_b (pymatgen: cannot reshape",
        ),
        (
            _nacl().replace("_cell_angle_gamma   90\n", "").replace("_cell_length_c   5.64\n", ""),
            "missing cell parameter: _cell_length_c, _cell_angle_gamma (pymatgen: ",
        ),
        (
            _nacl().replace("  Cl Cl 0 0.5 0 1", "  Cl Cl 0 0.5 0 1\n  Na Na2 0 0.5 0 1"),
            "two atoms on one site: Cl and Na2 at (0, 0.5, 0), total occupancy 2 "
            "(pymatgen: Occupancy 2.0 exceeded tolerance.)",
        ),
        (
            _nacl().split("loop_\n _atom_site_type_symbol")[0],
            "missing atom sites: no _atom_site_label",
        ),
        (
            _nacl().replace("_cell_length_b   5.64", "_cell_length_b   0"),
            "degenerate lattice (zero volume) (pymatgen: Singular matrix)",
        ),
        (
            (BAD / "unparsable.cif").read_text(),
            "unparsable CIF: could not convert string to float: 'zero'",
        ),
        (
            "data_global\n_journal_name_full 'A journal'\n",
            "no structure: a data block without cell or atom sites (pymatgen: ",
        ),
    ],
)
def test_cif_reject_reason_is_specific(text, reason):
    with pytest.raises(Reject) as info:
        parse_structure(RawRecord(0, "c", "c", "cif", text=text))
    msg = str(info.value)
    assert msg.startswith(reason), msg
    assert "Invalid CIF file with no structures" not in msg and "\n" not in msg


def test_two_half_occupied_atoms_on_one_site_are_partial_occupancy_not_overlap():
    text = _nacl().replace("  Cl Cl 0 0.5 0 1", "  Cl Cl 0 0.5 0 0.5\n  Na Na2 0 0.5 0 0.5")
    with pytest.raises(Reject, match=r"^partial occupancy"):
        parse_structure(RawRecord(0, "c", "c", "cif", text=text))


# --- 7. majority-occupancy tie-break ----------------------------------------------------------


@pytest.mark.parametrize(("first", "second", "winner"), [("Na", "K", 19), ("Li", "Cs", 55)])
def test_majority_tie_break_does_not_depend_on_row_order(first, second, winner):
    picks = []
    for a, b in ((first, second), (second, first)):
        text = _nacl().replace("  Na Na 0 0 0 1", f"  {a} {a}1 0 0 0 0.5\n  {b} {b}1 0 0 0 0.5")
        p = parse_structure(RawRecord(0, "c", "c", "cif", text=text), "majority")
        picks.append(int(p.z[np.flatnonzero(np.abs(p.frac).sum(1) < 1e-9)][0]))
    assert picks == [winner, winner]  # the lower electronegativity wins


def test_majority_tie_break_is_stated_in_the_schema():
    schema = yaml.safe_load(
        (REPO / "src" / "sciclr" / "schemas" / "config.schema.yaml").read_text()
    )
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "occupancy" in node and isinstance(node["occupancy"], dict):
                found.append(node["occupancy"].get("description", ""))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert found and all("tie" in d and "electronegativity" in d for d in found)


# --- 8. over all of these: nothing lost ------------------------------------------------------

BAD_IDS = [
    "POSCAR_broken",
    "bom_nacl",
    "empty",
    "gaas",
    "good_nacl",
    "isolated_atom",
    "missing_cell_length",
    "missing_label",
    "not_a_structure",
    "overlapping_atoms",
    "partial_occupancy",
    "si",
    "too_many_atoms",
    "truncated",
    "two_atoms_one_site",
    "two_blocks_KCl",
    "two_blocks_noatoms",
    "unparsable",
    "water",
]


@pytest.mark.parametrize("n_shards", [1, 3])
def test_no_crystal_record_is_lost(n_shards):
    cfg = bad_cfg()
    parts = [crystals.preprocess_shard(cfg, s, n_shards) for s in range(n_shards)]
    for p in parts:
        assert p.counts["in"] == p.counts["out"] + p.counts["rejected"]
    out = crystals.merge(parts, cfg)
    _all_accounted(out, BAD_IDS)
    edge = crystals.merge(
        [crystals.preprocess_shard(crystal_cfg(BAD / "isolated_atom.cif"), 0, 1)], cfg
    )
    _all_accounted(edge, ["isolated_atom"])


@pytest.mark.parametrize("n_shards", [1, 3])
def test_no_dna_record_is_lost(tmp_path, n_shards):
    inputs = [DNA / "invisible_prefixes.fasta", DNA / "bom.gb", DNA / "awkward.fasta"]
    cat = tmp_path / "cat.fasta"  # clean.fasta twice, the second copy with its BOM
    cat.write_bytes((DNA / "clean.fasta").read_bytes() + BOM + (DNA / "clean.fasta").read_bytes())
    inputs.append(cat)
    expected = [*CLEAN_IDS, "gb_0", "gb_1", "gb_2"]
    expected += read_records(DNA / "awkward.fasta")[0] + CLEAN_IDS * 2
    cfg = dna_cfg(*inputs, labels=str(DNA / "labels_bom.tsv"))
    parts = [preprocess_dna_shard(cfg, s, n_shards) for s in range(n_shards)]
    out = merge_dna(parts, cfg)
    assert out.counts["in"] == len(expected) == 6 + 3 + 13 + 12
    assert out.counts["in"] == out.counts["out"] + out.counts["rejected"]
    assert out.counts["out"] + out.counts["rejected"] == len(out.records) + len(out.rejects)
    assert sorted(out.records["id"].tolist() + out.rejects["id"].tolist()) == sorted(expected)
    # the second and third copies of clean_* are duplicates, listed as such
    dup = out.rejects[out.rejects["id"].str.startswith("clean_")]
    assert len(dup) == 12 and dup["reason"].str.startswith("duplicate id").all()


def test_summary_of_all_edge_cases_adds_up(tmp_path):
    """Through the workflow's steps: parse → preprocess → gather, 3 shards."""
    params = {
        "name": "m",
        "domain": "materials",
        "input": [str(BAD)],
        "labels": str(HERE / "crystals" / "bad_labels.csv"),
        "id_column": "material_id",
        "split_column": "split",
        "tasks": TASKS,
    }
    shards = []
    for i in range(3):
        pipeline.parse_shard(params, i, 3, tmp_path / f"p{i}.pt")
        pipeline.preprocess_shard(params, i, 3, tmp_path / f"s{i}", parsed=tmp_path / f"p{i}.pt")
        shards.append(tmp_path / f"s{i}")
    pipeline.gather(params, shards, tmp_path / "out")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    records = pipeline.read_records(tmp_path / "out")
    rejects = pd.read_csv(tmp_path / "out" / "rejects.tsv", sep="\t", dtype=str)
    assert (s["in"], s["out"], s["rejected"]) == (19, 5, 14)
    assert sorted(records["id"].tolist() + rejects["id"].tolist()) == BAD_IDS
    assert sum(s["reasons"].values()) == s["rejected"]
    assert s["label_rows_without_record"] == 1


def test_gather_stops_when_the_shard_counts_do_not_add_up(tmp_path):
    params = {"name": "m", "domain": "materials", "input": [str(BAD)]}
    pipeline.preprocess_shard(params, 0, 1, tmp_path / "s0")
    counts = json.loads((tmp_path / "s0" / "counts.json").read_text())
    counts["in"] += 1  # a record that went nowhere
    (tmp_path / "s0" / "counts.json").write_text(json.dumps(counts))
    with pytest.raises(SciclrError, match=r"^m: 20 records in, but 6 kept \+ 13 rejected"):
        pipeline.gather(params, [tmp_path / "s0"], tmp_path / "out")
