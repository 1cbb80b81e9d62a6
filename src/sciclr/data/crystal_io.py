"""Crystal structure inputs: a CSV with a CIF column, folders of CIF files, POSCAR/CONTCAR files.

:func:`list_inputs` enumerates records (cheap: no parsing) so that shards can pick theirs by
global index; :func:`parse_structure` turns one record's text into plain arrays with pymatgen,
applying the disorder policy, or raises :class:`Reject` with the reason that goes to
``rejects.tsv``.

Rules for awkward inputs (nothing is lost silently):

* a CIF with several ``data_`` blocks is several records, ids ``<stem>_<block>`` (a CSV cell:
  ``<id>_<block>``); listing finds the blocks by scanning the ``data_`` lines (no parsing), so
  the global record index, and with it the sharding, is known from listing alone. Blocks of
  powder-diffraction data (``data_..powder_pattern..``), which pymatgen skips too, are no
  records. A CIF with one block keeps the file's id;
* a UTF-8 byte-order mark before a CIF or POSCAR text is ignored, and so are blank lines
  before a POSCAR's comment line;
* reject reasons are specific and keep pymatgen's message: ``empty file``, ``not a CIF: no
  data_ block``, ``no structure: ...`` (a block of metadata only), ``missing cell parameter:
  _cell_length_b``, ``missing atom sites: ...``, ``two atoms on one site: ...``, ``degenerate
  lattice (zero volume)``, ``unparsable CIF: <pymatgen's message>``;
* a POSCAR's coordinate lines are counted against its counts line (``POSCAR: counts line
  promises N atoms, found M coordinate lines``), and a POSCAR whose element symbols cannot be
  determined (pymatgen would invent them: H, He, ...) is rejected (``unknown element symbols
  in POSCAR: ...``).
"""

from __future__ import annotations

import functools
import re
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
_BOM = "\ufeff"
#: a CIF data block starts at a line ``data_<name>`` (case-insensitive; a BOM may precede it)
_DATA_LINE = re.compile(r"^(?:[ \t]|\ufeff)*data_(\S*)([^\n]*)", re.MULTILINE | re.IGNORECASE)
_CELL_KEYS = tuple(f"_cell_length_{x}" for x in "abc") + tuple(
    f"_cell_angle_{x}" for x in ("alpha", "beta", "gamma")
)
_SITE_KEYS = ("_atom_site_label", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")


class Reject(Exception):
    """A record that is dropped (listed in rejects.tsv), not a user error."""


@dataclass
class RawRecord:
    """One structure before parsing. ``text`` is None when only its name is known yet.

    ``block`` is the index of the record's data block among the structure blocks of a CIF
    with several (None: the whole text is the record)."""

    order: int
    id: str
    source: str
    fmt: str  # "cif" | "poscar" | "unsupported" | "missing"
    text: str | None = None
    path: Path | None = None
    block: int | None = None

    def read(self) -> str:
        """The record's text (read from disk on demand, without a byte-order mark); raises
        :class:`Reject` if unreadable."""
        if self.block is not None:  # the file's text is shared by its blocks: not kept here
            text = self.text if self.text is not None else _read_cached(self.path)
            return cif_blocks(text)[self.block][1]
        if self.text is None:
            if self.path is None:
                raise Reject("no structure text")
            self.text = _read_text(self.path)
        return self.text.removeprefix(_BOM)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Reject("not UTF-8 text") from None
    except OSError as exc:
        raise Reject(f"cannot read file ({exc.strerror})") from None


def _read_cached(path: Path | None) -> str:
    """The text of a multi-block CIF, read once for all its blocks (keyed by size and time)."""
    if path is None:
        raise Reject("no structure text")
    try:
        st = path.stat()
    except OSError as exc:
        raise Reject(f"cannot read file ({exc.strerror})") from None
    return _read_keyed(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_keyed(path: Path, size: int, mtime_ns: int) -> str:
    return _read_text(path)


@functools.lru_cache(maxsize=4)
def cif_blocks(text: str) -> list[tuple[str, str]]:
    """``(name, text)`` of every structure data block of a CIF text, in file order; each text
    starts at its ``data_`` line. Blocks of powder-diffraction data are left out (pymatgen
    skips them too). Cached: the blocks of one file are parsed one after another."""
    heads = list(_DATA_LINE.finditer(text))
    ends = [m.start() for m in heads[1:]] + [len(text)]
    return [
        (m.group(1), "data_" + text[m.start(1) : end])
        for m, end in zip(heads, ends, strict=True)
        if "powder_pattern" not in m.group(0)
    ]


def _block_names(text: str) -> list[str]:
    """Names of the structure blocks of a CIF text when it has two or more (cheap: a count
    first, the line scan only when ``data_`` occurs twice), else ``[]``."""
    if text.lower().count("data_") < 2:
        return []
    names = [name for name, _ in cif_blocks(text)]
    return names if len(names) > 1 else []


def _file_block_names(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError:
        return []  # one record; parsing names the problem
    if data.lower().count(b"data_") < 2:
        return []
    return _block_names(data.decode("utf-8-sig", errors="replace"))


def _block_records(
    start: int, rid: str, source: str, names: list[str], **kw: Any
) -> list[RawRecord]:
    """The records of a CIF with several blocks: ids ``<rid>_<block>``, sources naming the
    block (a block without a name is numbered from 1)."""
    out = []
    for k, name in enumerate(names):
        label = name or str(k + 1)
        out.append(
            RawRecord(start + k, f"{rid}_{label}", f"{source}:data_{label}", "cif", block=k, **kw)
        )
    return out


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
    CSV inputs (None for file inputs), one row per table record indexed by the record's
    ``order`` (the rows of a cell with several CIF blocks repeat for each block). CIF files
    are only scanned for their ``data_`` lines here, not parsed; POSCAR files are not read."""
    fmt = cfg["format"]
    paths = list(cfg["input"])
    id_col, cif_col = cfg.get("id_column"), cfg["cif_column"]  # both used by tables only
    records: list[RawRecord] = []
    tables: list[pd.DataFrame] = []
    for raw in paths:
        path = Path(raw)
        kind = input_kind(path, fmt)
        files = _dir_files(path) if kind == "folder" else [path] if kind != "table" else []
        for f in files:
            ffmt = _file_format(f, fmt) if kind == "folder" else kind
            names = _file_block_names(f) if ffmt == "cif" else []
            if names:
                records.extend(_block_records(len(records), _file_id(f), str(f), names, path=f))
            else:
                records.append(RawRecord(len(records), _file_id(f), str(f), ffmt, path=f))
        if kind == "table":
            df = _read_csv(path, cfg)
            rows: list[int] = []  # table row of every record of the table
            ids = df[id_col].tolist()
            texts = df[cif_col].tolist()
            for row, (rid, text) in enumerate(zip(ids, texts, strict=True)):
                ok_id = isinstance(rid, str) and rid.strip() != ""
                ok_text = isinstance(text, str) and text.strip() != ""
                source = f"{path}:row{row + 2}"
                names = _block_names(text) if ok_id and ok_text else []
                if names:
                    new = _block_records(len(records), rid.strip(), source, names, text=text)
                    records.extend(new)
                    rows.extend([row] * len(new))
                    continue
                records.append(
                    RawRecord(
                        len(records),
                        rid.strip() if ok_id else f"{path.name}:row{row + 2}",
                        source,
                        "cif" if ok_id and ok_text else "missing",
                        text=text if ok_text else None,
                    )
                )
                rows.append(row)
                if not ok_id:
                    records[-1].text = "missing id"
                elif not ok_text:
                    records[-1].text = f"empty {cif_col!r} cell"
            first = len(records) - len(rows)
            lab = df.drop(columns=[cif_col]).iloc[rows]
            lab = lab.set_axis(pd.RangeIndex(first, len(records))).assign(
                **{id_col: [r.id for r in records[first:]]}
            )
            tables.append(lab)
    labels = None
    if tables:
        labels = pd.concat(tables)
        labels[id_col] = labels[id_col].astype("string")
    return records, labels


def _tie_key(species: Any) -> tuple[float, int]:
    """Tie-break among equally occupied species: lowest Pauling electronegativity first (no
    value: last), then lowest atomic number; independent of the order of the file's rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no Pauling electronegativity for ..."
        x = float(getattr(species, "X", np.nan))
    return (x if np.isfinite(x) else np.inf, int(getattr(species, "Z", 0)))


def _majority(structure: Any) -> tuple[Any, int]:
    """Keep at each disordered site its most occupied species; a site whose vacancy
    (1 - total occupancy) outweighs every species is removed. Ties (within 1e-8) go to the
    species of lowest electronegativity, then lowest atomic number (:func:`_tie_key`), so the
    rule is deterministic and does not depend on the order of the atom-site rows. The policy
    is stated in the schema's description of ``preprocess.occupancy``."""
    from pymatgen.core import Structure

    species, coords, n_changed = [], [], 0
    for site in structure:
        occ = site.species
        if len(occ) == 1 and abs(next(iter(occ.values())) - 1) < 1e-8:
            species.append(next(iter(occ)))
            coords.append(site.frac_coords)
            continue
        n_changed += 1
        w = max(occ.values())
        best = min((sp for sp, v in occ.items() if v >= w - 1e-8), key=_tie_key)
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

    if record.fmt == "missing":
        raise Reject(record.text or "missing structure")
    if record.fmt == "unsupported":
        raise Reject("unsupported file type (expected .cif, POSCAR/CONTCAR or .vasp)")
    text = record.read()
    s = _parse_cif(text) if record.fmt == "cif" else _parse_poscar(text)
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


def _one_line(text: str, limit: int = 160) -> str:
    return " ".join(text.split())[:limit]


def _pymatgen_message(exc: BaseException) -> str:
    """pymatgen's own reason, one line (the cause under ``on_error="raise"``'s wrapper)."""
    inner = exc.__cause__ if exc.__cause__ is not None else exc
    msg = _one_line(str(inner))
    if isinstance(inner, KeyError):
        msg = f"missing key {msg}"
    return msg or type(inner).__name__


def _parse_cif(text: str) -> Any:
    """The one structure of a CIF data block (pymatgen), or :class:`Reject` with the reason."""
    from pymatgen.io.cif import CifParser

    parser = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_cif only warns (formula vs. sites)
        try:
            parser = CifParser.from_str(text, check_cif=False)
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except Exception as exc:  # pymatgen raises many types on malformed text
            raise Reject(_cif_reason(text, parser, exc)) from None
    if len(structures) != 1:
        raise Reject(f"unparsable CIF: {len(structures)} structures in one data block")
    return structures[0]


def _cif_reason(text: str, parser: Any, exc: BaseException) -> str:
    """Why pymatgen found no structure in a CIF text: a specific reason that keeps pymatgen's
    message (failure path only: the text is looked at again)."""
    if not text.strip():
        return "empty file"
    if not _DATA_LINE.search(text):
        return "not a CIF: no data_ block"
    if not cif_blocks(text):
        return "no structure: only powder-pattern data blocks"
    msg = _pymatgen_message(exc)
    said = f" (pymatgen: {msg})"
    try:
        blocks = list(parser.as_dict().values()) if parser is not None else []
    except Exception:
        blocks = []
    if not blocks:  # the CIF syntax itself is broken
        return f"unparsable CIF: {msg}"
    data = blocks[0]
    if not any(k in data for k in (*_CELL_KEYS, *_SITE_KEYS)):
        return f"no structure: a data block without cell or atom sites{said}"
    missing = [k for k in _CELL_KEYS if k not in data]
    if missing:
        return f"missing cell parameter: {', '.join(missing)}{said}"
    missing = [k for k in _SITE_KEYS if k not in data]
    if missing:
        return f"missing atom sites: no {', '.join(missing)}{said}"
    if "exceeded tolerance" in msg:
        return f"two atoms on one site: {_shared_site(data)}{said}"
    if "singular matrix" in msg.lower():
        return f"degenerate lattice (zero volume){said}"
    return f"unparsable CIF: {msg}"


def _shared_site(data: Mapping[str, Any]) -> str:
    """The atom-site rows whose occupancies at one position add up to more than 1."""
    from pymatgen.io.cif import str2float

    def as_list(v: Any) -> list[str]:
        return list(v) if isinstance(v, list) else [v]

    labels = as_list(data["_atom_site_label"])
    xyz = [as_list(data[k]) for k in _SITE_KEYS[1:]]
    occ = as_list(data.get("_atom_site_occupancy", ["1"] * len(labels)))
    sites: dict[tuple[float, ...], list[int]] = {}
    try:
        for i in range(len(labels)):
            key = tuple(round(str2float(c[i]) % 1.0, 4) % 1.0 for c in xyz)
            sites.setdefault(key, []).append(i)
        for rows in sites.values():
            total = sum(str2float(occ[i]) if occ[i] not in ("?", ".") else 1.0 for i in rows)
            if len(rows) > 1 and total > 1 + 1e-6:
                where = ", ".join(xyz[a][rows[0]] for a in range(3))
                names = " and ".join(labels[i] for i in rows[:4])
                return f"{names} at ({where}), total occupancy {total:g}"
    except (ValueError, IndexError):
        pass
    return "symmetry-equivalent positions coincide"


def _poscar_text(text: str) -> str:
    """Blank lines before a POSCAR's comment line removed (a blank first line stays when the
    next one is the scale factor: then it is an empty comment)."""
    lines = text.split("\n")
    k = 0
    while k < len(lines) and not lines[k].strip():
        k += 1
    if k == 0 or k == len(lines):
        return text
    rest = lines[k:]
    if _floats(rest[0]) in (1, 3) and len(rest) > 3 and all(_floats(x) >= 3 for x in rest[1:4]):
        return "\n" + "\n".join(rest)  # the comment line itself was empty
    return "\n".join(rest)


def _floats(line: str) -> int:
    """How many leading tokens of ``line`` are numbers."""
    n = 0
    for tok in line.split():
        try:
            float(tok)
        except ValueError:
            break
        n += 1
    return n


def _ints(line: str) -> list[int] | None:
    try:
        return [int(t) for t in line.split()]
    except ValueError:
        return None


def _coordinate_line(line: str) -> bool:
    if _floats(line) >= 3:
        return True
    # pymatgen also reads coordinates glued by their minus signs ("0.5-0.25-0.1")
    parts = [t for tok in line.split() for t in re.split(r"(?<=\d)(?=-)", tok) if t]
    return len(parts) >= 3 and _floats(" ".join(parts)) >= 3


def _poscar_atom_lines(text: str) -> tuple[int, int] | None:
    """``(atoms promised by the counts line, coordinate lines found)`` of a POSCAR text laid
    out as pymatgen reads it (the block up to the first blank line; an optional species line,
    an optional ``Selective dynamics`` line); None when the header is not readable (then
    pymatgen names the problem)."""
    block = re.split(r"\n\s*\n", text.rstrip(), maxsplit=1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.split("\n")]
    if len(lines) < 7 or any(_floats(x) < 3 for x in lines[2:5]):
        return None
    counts, ipos = _ints(lines[5]), 6
    if counts is None:  # a species line first (VASP 5)
        counts, ipos = _ints(lines[6]), 7
    if not counts:
        return None
    promised = sum(counts)
    if ipos < len(lines) and lines[ipos][:1] in ("s", "S"):
        ipos += 1  # Selective dynamics
    if ipos >= len(lines):
        return None
    found = 0
    for line in lines[ipos + 1 :]:
        if not _coordinate_line(line):
            break
        found += 1
    return promised, found


def _parse_poscar(text: str) -> Any:
    """The structure of a POSCAR/CONTCAR text (pymatgen), or :class:`Reject` with the reason."""
    from pymatgen.io.vasp import Poscar

    if not text.strip():
        raise Reject("empty file")
    text = _poscar_text(text)
    atoms = _poscar_atom_lines(text)
    if atoms is not None and atoms[0] != atoms[1]:
        raise Reject(
            f"POSCAR: counts line promises {atoms[0]} atoms, found {atoms[1]} coordinate lines"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            s = Poscar.from_str(text).structure
        except Exception as exc:  # pymatgen raises many types on malformed text
            raise Reject(f"unparsable POSCAR: {_pymatgen_message(exc)}") from None
    for w in caught:
        if str(w.message).startswith("Elements in POSCAR cannot be determined"):
            raise Reject(
                "unknown element symbols in POSCAR: no species line and no symbols after the "
                f"coordinates (pymatgen: {_one_line(str(w.message))})"
            )
    return s


def reject_frame(rows: Sequence[tuple[str, str, str, int]]) -> pd.DataFrame:
    """``rejects`` table (``id, source, reason, order``) from tuples."""
    return pd.DataFrame(list(rows), columns=["id", "source", "reason", "order"]).astype(
        {"order": np.int64}
    )
