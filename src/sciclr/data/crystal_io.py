"""Crystal structure inputs: a CSV with a CIF column, folders of CIF files, POSCAR/CONTCAR files.

:func:`list_inputs` enumerates records (cheap: no parsing) so that shards can pick theirs by
global index; :func:`parse_structure` turns one record's text into plain arrays with pymatgen,
applying the disorder policy, or raises :class:`Reject` with the reason that goes to
``rejects.tsv``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.data.records import TAB_SUFFIXES, TABLE_ENCODING, table_separator
from sciclr.errors import SciclrError

__all__ = [
    "TABLE_SUFFIXES",
    "ParsedStructure",
    "RawRecord",
    "Reject",
    "input_kind",
    "list_inputs",
    "parse_structure",
]

TABLE_SUFFIXES = (".csv", *TAB_SUFFIXES)
_POSCAR_SUFFIXES = {".vasp", ".poscar"}


class Reject(Exception):
    """A record that is dropped (listed in rejects.tsv), not a user error."""


@dataclass
class RawRecord:
    """One structure before parsing. ``text`` is None when only its name is known yet."""

    order: int
    id: str
    source: str
    fmt: str  # "cif" | "poscar" | "unsupported" | "missing"
    text: str | None = None
    path: Path | None = None

    def read(self) -> str:
        """The record's text (read from disk on demand); raises :class:`Reject` if unreadable."""
        if self.text is None:
            if self.path is None:
                raise Reject("no structure text")
            try:
                self.text = self.path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                raise Reject("not UTF-8 text") from None
            except OSError as exc:
                raise Reject(f"cannot read file ({exc.strerror})") from None
        return self.text


@dataclass
class ParsedStructure:
    lattice: np.ndarray  # (3, 3) rows = lattice vectors, Å
    frac: np.ndarray  # (n, 3)
    z: np.ndarray  # (n,) atomic numbers
    n_majority: int = 0  # disordered sites resolved by the "majority" policy


def _is_poscar_name(path: Path) -> bool:
    name = path.name.upper()
    return name.startswith(("POSCAR", "CONTCAR")) or path.suffix.lower() in _POSCAR_SUFFIXES


def _file_id(path: Path) -> str:
    """``mp-1.cif`` -> ``mp-1``; ``mp-1/POSCAR`` -> ``mp-1``; ``Si.vasp`` -> ``Si``."""
    if path.name.upper() in ("POSCAR", "CONTCAR"):
        return path.parent.name or path.name
    return path.stem if path.suffix else path.name


def _file_format(path: Path, fmt: str) -> str:
    is_cif = path.suffix.lower() == ".cif"
    if fmt == "cif_dir":
        return "cif" if is_cif else "unsupported"
    if fmt == "poscar_dir":
        return "poscar" if _is_poscar_name(path) else "unsupported"
    return "cif" if is_cif else "poscar" if _is_poscar_name(path) else "unsupported"


def _dir_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _read_csv(path: Path, cfg: Mapping[str, Any]) -> pd.DataFrame:
    id_col, cif_col = cfg.get("id_column"), cfg["cif_column"]
    if id_col is None:
        raise SciclrError(f"{path}: a table of structures needs id_column (the column of ids)")
    try:
        df = pd.read_csv(
            path,
            sep=table_separator(path),
            dtype={id_col: str},
            keep_default_na=True,
            encoding=TABLE_ENCODING,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SciclrError(f"{path}: not a readable CSV/TSV table ({exc})") from None
    missing = [c for c in (id_col, cif_col) if c not in df.columns]
    if missing:
        raise SciclrError(
            f"{path}: column(s) {missing} not found (set id_column / cif_column); "
            f"available: {list(df.columns)[:12]}"
        )
    return df


def _looks_like_dna(path: Path) -> str | None:
    """``"FASTA"``/``"GenBank"`` when the file starts like one (a DNA file given by mistake)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip(b"\xef\xbb\xbf").lstrip()
    except OSError:
        return None
    if head.startswith(b">"):
        return "FASTA"
    if head.startswith(b"LOCUS"):
        return "GenBank"
    return None


def input_kind(path: Path, fmt: str) -> str:
    """What one configured input is: ``"folder"`` (of CIF/POSCAR files), ``"table"`` (CSV/TSV
    with a CIF column), ``"cif"`` or ``"poscar"``; a clear error for anything else. Reads at most
    the first bytes of a file, so it is cheap enough to run before any job."""
    if not path.exists():
        raise SciclrError(f"{path}: input not found")
    if path.is_dir():
        if fmt == "csv":
            raise SciclrError(f"{path}: format 'csv' expects a table file, got a folder")
        return "folder"
    suffix = path.suffix.lower()
    dna = _looks_like_dna(path)
    if dna:
        raise SciclrError(
            f"{path}: looks like {dna} (DNA sequences), not crystal structures "
            "(configure it under a 'dna' data set)"
        )
    if fmt in ("csv", "auto") and suffix in TABLE_SUFFIXES:
        return "table"
    if fmt in ("auto", "cif_dir") and suffix == ".cif":
        return "cif"
    if fmt in ("auto", "poscar_dir") and _is_poscar_name(path):
        return "poscar"
    raise SciclrError(
        f"{path}: cannot read as format {fmt!r} (expected a CSV/TSV with a CIF column, a .cif or "
        "POSCAR/CONTCAR file, or a folder of them)"
    )


def list_inputs(cfg: Mapping[str, Any]) -> tuple[list[RawRecord], pd.DataFrame | None]:
    """All records of ``cfg["input"]`` in global order, and the label table carried by the
    CSV inputs (None for file inputs). CIF/POSCAR files are not read here."""
    fmt = cfg["format"]
    paths = list(cfg["input"])
    id_col, cif_col = cfg.get("id_column"), cfg["cif_column"]  # both used by tables only
    records: list[RawRecord] = []
    tables: list[pd.DataFrame] = []
    for raw in paths:
        path = Path(raw)
        kind = input_kind(path, fmt)
        if kind == "folder":
            for f in _dir_files(path):
                records.append(
                    RawRecord(len(records), _file_id(f), str(f), _file_format(f, fmt), path=f)
                )
        elif kind == "table":
            df = _read_csv(path, cfg)
            tables.append(df.drop(columns=[cif_col]))
            ids = df[id_col].tolist()
            texts = df[cif_col].tolist()
            for row, (rid, text) in enumerate(zip(ids, texts, strict=True)):
                ok_id = isinstance(rid, str) and rid.strip() != ""
                ok_text = isinstance(text, str) and text.strip() != ""
                records.append(
                    RawRecord(
                        len(records),
                        rid.strip() if ok_id else f"{path.name}:row{row + 2}",
                        f"{path}:row{row + 2}",
                        "cif" if ok_id and ok_text else "missing",
                        text=text if ok_text else None,
                    )
                )
                if not ok_id:
                    records[-1].text = "missing id"
                elif not ok_text:
                    records[-1].text = f"empty {cif_col!r} cell"
        else:
            records.append(RawRecord(len(records), _file_id(path), str(path), kind, path=path))
    labels = None
    if tables:
        labels = pd.concat(tables, ignore_index=True)
        labels[id_col] = labels[id_col].astype("string")
    return records, labels


def _majority(structure: Any) -> tuple[Any, int]:
    """Keep at each disordered site its most occupied species; a site whose vacancy
    (1 - total occupancy) outweighs every species is removed. Ties go to the species that
    pymatgen lists first (by electronegativity), so the rule is deterministic."""
    from pymatgen.core import Structure

    species, coords, n_changed = [], [], 0
    for site in structure:
        occ = site.species
        if len(occ) == 1 and abs(next(iter(occ.values())) - 1) < 1e-8:
            species.append(next(iter(occ)))
            coords.append(site.frac_coords)
            continue
        n_changed += 1
        best, w = max(occ.items(), key=lambda kv: kv[1])
        if 1 - sum(occ.values()) > w:
            continue
        species.append(best)
        coords.append(site.frac_coords)
    if not species:
        raise Reject("partial occupancy: no site left after the majority rule")
    return Structure(structure.lattice, species, coords), n_changed


def parse_structure(record: RawRecord, occupancy: str = "reject") -> ParsedStructure:
    """Parse one record with pymatgen into arrays; raise :class:`Reject` with a reason.

    ``occupancy``: ``"reject"`` drops structures with partial occupancy; ``"majority"`` keeps
    the majority species of each disordered site (see :func:`_majority`).
    """
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifParser
    from pymatgen.io.vasp import Poscar

    if record.fmt == "missing":
        raise Reject(record.text or "missing structure")
    if record.fmt == "unsupported":
        raise Reject("unsupported file type (expected .cif, POSCAR/CONTCAR or .vasp)")
    text = record.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if record.fmt == "cif":
                # check_cif only warns (formula vs. sites); we would discard it anyway.
                parser = CifParser.from_str(text, check_cif=False)
                structures = parser.parse_structures(primitive=False, on_error="ignore")
                if len(structures) != 1:
                    what = "no structure" if not structures else f"{len(structures)} structures"
                    raise Reject(f"unparsable CIF: {what} in the file")
                s = structures[0]
            else:
                s = Poscar.from_str(text).structure
        except Reject:
            raise
        except Exception as exc:  # pymatgen raises many types on malformed text
            kind = "CIF" if record.fmt == "cif" else "POSCAR"
            msg = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            raise Reject(f"unparsable {kind}: {msg}") from None
    assert isinstance(s, Structure)
    n_major = 0
    if not s.is_ordered:
        if occupancy != "majority":
            n_dis = sum(1 for site in s if not site.is_ordered)
            raise Reject(f"partial occupancy: {n_dis} disordered site(s) (policy: reject)")
        s, n_major = _majority(s)
    try:
        z = np.fromiter((site.specie.Z for site in s), dtype=np.int64, count=len(s))
    except AttributeError:
        raise Reject("non-element species (dummy or vacancy) in the structure") from None
    if len(z) == 0:
        raise Reject("structure has no atoms")
    lattice = s.lattice.matrix
    if abs(np.linalg.det(lattice)) < 1e-6:
        raise Reject("degenerate lattice (zero volume)")
    return ParsedStructure(np.array(lattice, dtype=float), s.frac_coords.copy(), z, n_major)


def reject_frame(rows: Sequence[tuple[str, str, str, int]]) -> pd.DataFrame:
    """``rejects`` table (``id, source, reason, order``) from tuples."""
    return pd.DataFrame(list(rows), columns=["id", "source", "reason", "order"]).astype(
        {"order": np.int64}
    )
