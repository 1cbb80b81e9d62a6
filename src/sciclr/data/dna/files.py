"""Reading FASTA (plain, gzip, bgzip, bzip2, xz) and GenBank files into raw record bytes.

FASTA records are located in the file's bytes with a vectorised scan (no per-record Python
objects beyond the header titles); GenBank goes through Biopython. A file that is not DNA text at
all (FASTQ, a CIF, binary) stops with a :class:`~sciclr.errors.SciclrError` naming the file and
what it looks like.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from sciclr.errors import SciclrError

__all__ = ["check_file", "one_line", "read_records", "sniff_format", "split_fasta"]

_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark
_BOM_LATIN1 = _BOM.decode("latin-1")  # the same read as latin-1 text
#: last bytes of an invisible line prefix before a '>' header (blanks, the BOM's last byte)
_PREFIX_LAST = np.frombuffer(b" \t\v\f\xbf", dtype=np.uint8)


def _open_bytes(path: Path) -> io.BufferedIOBase:
    """Binary stream of the decompressed file (gzip/bgzip, bzip2, xz detected by magic bytes)."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise SciclrError(f"{path}: cannot open ({exc.strerror})") from None
    head = fh.read(6)
    fh.seek(0)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            if kind == "gzip":  # bgzip is multi-member gzip: the gzip module reads it whole
                return gzip.open(fh)  # type: ignore[return-value]
            if kind == "bz2":
                return bz2.open(fh)  # type: ignore[return-value]
            return lzma.open(fh)  # type: ignore[return-value]
    return fh


def sniff_format(path: Path, head: bytes) -> str:
    """``"fasta"`` or ``"genbank"`` from the first bytes; a clear error for anything else."""
    text = head.lstrip(_BOM).lstrip()  # BOM, leading blank lines
    if not text:
        raise SciclrError(f"{path}: file is empty (no sequence records)")
    if b"\x00" in head:
        raise SciclrError(f"{path}: binary content, not a FASTA or GenBank text file")
    if text.startswith(b">") or text.startswith(b";"):
        return "fasta"
    if text.startswith(b"LOCUS"):
        return "genbank"
    if text.startswith(b"@"):
        raise SciclrError(f"{path}: looks like FASTQ (reads); sciclr reads FASTA or GenBank")
    lowered = head.lower()
    if text.startswith(b"data_") or b"_cell_length_a" in lowered or b"_atom_site" in lowered:
        raise SciclrError(
            f"{path}: looks like a CIF crystal structure, not DNA "
            "(configure it under a 'materials' data set)"
        )
    first = text.split(b"\n", 1)[0][:60].decode("latin-1")
    raise SciclrError(
        f"{path}: not FASTA ('>' header) or GenBank ('LOCUS' line); first line: {first!r}"
    )


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def split_fasta(data: bytes) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Locate the records of a FASTA text held in memory, vectorised.

    A header is a line whose first visible character is ``>``: invisible prefixes (a UTF-8
    byte-order mark, spaces, tabs) never cost a record, at the start of the file or of any line
    (files concatenated with their BOMs); a line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``
    (files with mixed line ends). The record's sequence is everything from the end of the
    header line up to the next header's line (line breaks and spaces included: they are
    deleted when encoding). Text before the first header (``;`` comments, blank lines) is
    ignored, as Biopython's ``fasta-pearson`` does. Returns ``(titles, starts, ends)`` with the
    sequence of record ``i`` in ``data[starts[i]:ends[i]]``.
    """
    if b"\n" not in data and b"\r" in data:  # classic Mac line ends
        data = data.replace(b"\r", b"\n")
    arr = np.frombuffer(data, dtype=np.uint8)
    cr = b"\r" in data  # Windows or mixed line ends: a lone \r ends a line too
    gt = np.flatnonzero(arr == ord(">"))
    prev = arr[np.maximum(gt - 1, 0)]
    at_line_start = (gt == 0) | (prev == ord("\n")) | (cr & (prev == ord("\r")))
    # a '>' after a blank or the BOM's last byte may still start its line: check those few
    maybe = np.flatnonzero(~at_line_start & np.isin(prev, _PREFIX_LAST))
    nl = np.flatnonzero(((arr == ord("\n")) | (arr == ord("\r"))) if cr else (arr == ord("\n")))
    line_start = gt.copy()
    if len(maybe):
        ls = np.searchsorted(nl, gt[maybe])  # newlines before each candidate
        ls = np.where(ls > 0, nl[np.maximum(ls - 1, 0)] + 1, 0)
        for m, a in zip(maybe.tolist(), ls.tolist(), strict=True):
            if not data[a : gt[m]].replace(_BOM, b"").strip():
                at_line_start[m] = True
                line_start[m] = a
    gt, line_start = gt[at_line_start], line_start[at_line_start]
    k = np.searchsorted(nl, gt)
    if len(nl):
        head_end = np.where(k < len(nl), nl[np.minimum(k, len(nl) - 1)], len(arr))
    else:
        head_end = np.full(len(gt), len(arr), dtype=np.int64)
    starts = np.minimum(head_end + 1, len(arr))
    ends = np.r_[line_start[1:], len(arr)].astype(np.int64)
    titles = [
        data[a + 1 : b].decode("latin-1").strip()
        for a, b in zip(gt.tolist(), head_end.tolist(), strict=True)
    ]
    return titles, starts.astype(np.int64), ends


class _GenBankLines(io.TextIOBase):
    """Lines of a GenBank text with invisible prefixes removed between records.

    Biopython skips every line before a ``LOCUS`` line that does not start with ``LOCUS``, so
    a byte-order mark (or indentation) before it would silently drop the record. Between
    records (at the start, after a ``//`` line) a BOM and leading blanks are removed from a
    line that then starts with ``LOCUS``; lines inside a record are passed through unchanged.
    """

    def __init__(self, handle: io.TextIOBase) -> None:
        self._handle = handle
        self._between = True

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:  # Biopython probes read(0) for text mode
        return self._handle.read(size)

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        line = self._handle.readline(-1 if size is None else size)
        if self._between:
            bare = line.replace(_BOM_LATIN1, "").lstrip(" \t")
            if bare.startswith("LOCUS"):
                self._between = False
                return bare
        elif line.startswith("//"):
            self._between = True
        return line


def _genbank_records(handle: io.TextIOBase) -> Iterator[tuple[str, bytes | None]]:
    from Bio import SeqIO
    from Bio.Seq import UndefinedSequenceError

    for rec in SeqIO.parse(handle, "genbank"):
        try:
            seq = bytes(rec.seq)
        except UndefinedSequenceError:
            seq = None  # a CONTIG-only entry: no bases in the file
        yield rec.id, seq


HEAD_BYTES = 65536  # what format sniffing reads


def _kind(path: Path, head: bytes, fmt: str) -> str:
    kind = sniff_format(path, head)
    if fmt not in ("auto", kind):
        raise SciclrError(f"{path}: configured format {fmt!r} but the file looks like {kind}")
    return kind


def check_file(path: str | Path, fmt: str = "auto") -> str:
    """``"fasta"``/``"genbank"`` for a readable DNA file, from its first bytes only (cheap:
    the workflow checks every input this way before any job runs); else a one-line error."""
    path = Path(path)
    if path.is_dir():
        raise SciclrError(
            f"{path}: is a folder; a dna data set reads FASTA or GenBank files (a folder of CIF "
            "or POSCAR files belongs under a 'materials' data set)"
        )
    raw = _open_bytes(path)
    try:
        head = raw.read(HEAD_BYTES)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise SciclrError(f"{path}: cannot decompress ({one_line(exc)})") from None
    finally:
        raw.close()
    return _kind(path, head, fmt)


def read_records(
    path: str | Path, fmt: str = "auto", keep: Callable[[int], bool] | None = None
) -> tuple[list[str], dict[int, bytes | None]]:
    """Read one FASTA/GenBank file (plain, gzip/bgzip, bzip2 or xz).

    Returns every record's id (first word of the header; GenBank ``accession.version``) and
    the raw sequence bytes (line breaks included for FASTA) of the records for which
    ``keep(i)`` is true (all when ``keep`` is None), keyed by the record's index in the file.
    Malformed files raise :class:`SciclrError` naming the file (and record where known).
    """
    path = Path(path)
    raw = _open_bytes(path)
    ids: list[str] = []
    seqs: dict[int, bytes | None] = {}
    try:
        try:
            head = raw.read(HEAD_BYTES)
            raw.seek(0)
            kind = _kind(path, head, fmt)
            data = raw.read() if kind == "fasta" else b""
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise SciclrError(f"{path}: cannot decompress ({one_line(exc)})") from None
        if kind == "fasta":
            titles, starts, ends = split_fasta(data)
            ids = [t.split(None, 1)[0] if t else "" for t in titles]
            for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
                if keep is None or keep(i):
                    seqs[i] = data[a:b]
        else:
            handle = _GenBankLines(io.TextIOWrapper(raw, encoding="latin-1", newline=None))
            try:
                for i, (rid, seq) in enumerate(_genbank_records(handle)):
                    ids.append(rid.strip())
                    if keep is None or keep(i):
                        seqs[i] = seq
            except (ValueError, EOFError, OSError, lzma.LZMAError) as exc:
                where = f"record {len(ids) + 1}" + (f" (after {ids[-1]!r})" if ids else "")
                raise SciclrError(
                    f"{path}: {where}: cannot parse genbank ({one_line(exc)})"
                ) from None
    finally:
        raw.close()
    if not ids:
        raise SciclrError(f"{path}: no {kind} records found")
    return ids, seqs
