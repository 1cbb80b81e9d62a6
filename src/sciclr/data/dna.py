"""DNA ingest: FASTA (plain, gzip, bgzip) and GenBank → one uint8 code array plus offsets.

Every record of the inputs gets a global index (files in the configured order, records in file
order). Real-file quirks are handled by rule and counted:

* lower-case (soft-masked repeats): kept, upper-cased (``soft_masked_records``/``_bases``);
* IUPAC ambiguity codes (R Y S W K M B D H V) and N: stored as N (``iupac_bases``, ``n_bases``);
* ``U`` (RNA) is read as T (``u_bases``);
* gap/stop characters ``-`` ``.`` ``*``: removed (``gap_characters``);
* Windows line ends and stray spaces: ignored by the parsers;
* records dropped, each with a reason in the rejects table: empty id, duplicate id (the first
  occurrence wins), empty sequence, not DNA (letters outside the nucleotide alphabet, or fewer
  than half of the letters A/C/G/T/N), shorter than ``min_length``, more than
  ``max_n_fraction`` N, id missing from the label table.

A file that is not DNA at all (a protein FASTA, a CIF passed by mistake, FASTQ, binary) stops
with a :class:`~sciclr.errors.SciclrError` naming the file and what it looks like.

Encoding is one byte lookup table over the concatenated sequences (no per-record Python
objects are kept): ``codes`` (total_length,) uint8 with A=0, C=1, G=2, T=3, N=4, and
``offsets`` (n+1,) int64. Non-overlapping k-mer tokens for the transformer encoder are stored
the same way (``tokens`` int16, ``token_offsets``).

Sharding: shard ``s`` of ``n`` encodes only the records with global index ``i % n == s``, but
every shard reads all ids, so the duplicate rule gives the same answer in every shard and the
merged output equals the one-shard run.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sciclr.data.records import REJECT_COLUMNS, read_label_table
from sciclr.domains.base import Processed
from sciclr.errors import SciclrError
from sciclr.views.dna import N_CODE, TOKEN_OFFSET, TOKEN_UNK

__all__ = [
    "PREPROCESS_DEFAULTS",
    "decode",
    "encode",
    "preprocess_dna_shard",
    "read_records",
    "sniff_format",
    "tokenize",
]

PREPROCESS_DEFAULTS: dict[str, Any] = {
    "min_length": 100,  # records shorter than this (after removing gaps) are rejected
    "max_n_fraction": 0.5,  # records with a larger fraction of N/ambiguous bases are rejected
    "max_length": 4096,  # batches hold at most this many bases per record (centred window)
    "token_k": 4,  # k of the stored non-overlapping k-mer tokens (transformer encoder)
    "kmer_k": [4, 6],  # k of the canonical k-mer baseline profiles
}

# ----------------------------------------------------------------------------- byte classes
_CODE = np.full(256, 255, dtype=np.uint8)  # 255 = not a nucleotide letter
_DROP = np.zeros(256, dtype=bool)  # gap / stop / whitespace characters removed from sequences
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _CODE[_b + 32] = _i
_CODE[ord("U")] = _CODE[ord("u")] = 3
for _b in b"NRYSWKMBDHV":
    _CODE[_b] = _CODE[_b + 32] = N_CODE
for _b in b"-.*\t\r\n\v\f ":
    _DROP[_b] = True
_LOWER = np.zeros(256, dtype=bool)
_LOWER[ord("a") : ord("z") + 1] = True
_IUPAC = np.zeros(256, dtype=bool)
for _b in b"RYSWKMBDHV":
    _IUPAC[_b] = _IUPAC[_b + 32] = True
_UPPER_N = np.zeros(256, dtype=bool)
_UPPER_N[[ord("N"), ord("n")]] = True
_GAP = np.zeros(256, dtype=bool)
_GAP[list(b"-.*")] = True
_U = np.zeros(256, dtype=bool)
_U[[ord("U"), ord("u")]] = True
_DECODE = np.frombuffer(b"ACGTN-", dtype=np.uint8)

_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}


def encode(seq: str | bytes) -> np.ndarray:
    """Encode one sequence to codes (upper-cases, IUPAC → N, drops gaps). For tests and tools;
    ingest encodes whole files at once. Raises ValueError on a non-nucleotide letter."""
    raw = np.frombuffer(seq.encode("latin-1") if isinstance(seq, str) else seq, dtype=np.uint8)
    raw = raw[~_DROP[raw]]
    out = _CODE[raw]
    if (out == 255).any():
        bad = sorted({chr(c) for c in raw[out == 255]})
        raise ValueError(f"not a nucleotide sequence: letters {bad}")
    return out


def decode(codes: np.ndarray) -> str:
    """Codes back to an upper-case string (N for every ambiguous base)."""
    return _DECODE[np.asarray(codes, dtype=np.uint8)].tobytes().decode("ascii")


def tokenize(codes: np.ndarray, offsets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping k-mer tokens of ragged sequences (a trailing partial k-mer is dropped).

    Token id = k-mer index (A=0 … T=3, most significant base first) + 2; a k-mer containing N
    is ``TOKEN_UNK`` (1); 0 is padding. Returns ``(tokens (total,) int16, offsets (n+1,))``.
    """
    if not 1 <= k <= 7:
        raise SciclrError(f"preprocess.token_k must be in [1, 7], got {k}")
    offsets = np.asarray(offsets, dtype=np.int64)
    n_tok = np.diff(offsets) // k
    tok_off = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(n_tok, out=tok_off[1:])
    # start position (in codes) of every token: record start + k * (token index within record)
    rec = np.repeat(np.arange(len(n_tok)), n_tok)
    start = offsets[:-1][rec] + k * (np.arange(tok_off[-1]) - tok_off[:-1][rec])
    idx = np.zeros(len(start), dtype=np.int32)
    unk = np.zeros(len(start), dtype=bool)
    for j in range(k):
        c = codes[start + j]
        idx = (idx << 2) | (c & 3)
        unk |= c > 3
    tokens = np.where(unk, TOKEN_UNK, idx + TOKEN_OFFSET).astype(np.int16)
    return tokens, tok_off


# ----------------------------------------------------------------------------- reading files
def _open_bytes(path: Path) -> io.BufferedIOBase:
    """Binary stream of the decompressed file (gzip/bgzip, bzip2, xz detected by magic bytes)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
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
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()  # BOM, leading blank lines
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _fasta_records(handle: io.TextIOBase) -> Iterator[tuple[str, str]]:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    for title, seq in SimpleFastaParser(handle):
        yield title, seq


def _genbank_records(handle: io.TextIOBase, path: Path) -> Iterator[tuple[str, str | None]]:
    from Bio import SeqIO
    from Bio.Seq import UndefinedSequenceError

    for rec in SeqIO.parse(handle, "genbank"):
        try:
            seq = str(rec.seq)
        except UndefinedSequenceError:
            seq = None  # a CONTIG-only entry: no bases in the file
        yield rec.id, seq


def read_records(
    path: str | Path, fmt: str = "auto", keep: Any = None
) -> tuple[list[str], dict[int, str | None]]:
    """Read one FASTA/GenBank file (any supported compression).

    Returns every record's id (first word of the header; GenBank ``accession.version``) and
    the raw sequence strings of the records for which ``keep(i)`` is true (all when ``keep`` is
    None), keyed by the record's index in the file. Malformed files raise :class:`SciclrError`
    naming the file and record.
    """
    path = Path(path)
    raw = _open_bytes(path)
    try:
        try:
            head = raw.read(65536)
            raw.seek(0)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise SciclrError(f"{path}: cannot decompress ({_one_line(exc)})") from None
        kind = sniff_format(path, head)
        if fmt not in ("auto", kind):
            raise SciclrError(f"{path}: configured format {fmt!r} but the file looks like {kind}")
        handle = io.TextIOWrapper(raw, encoding="latin-1", newline=None)
        ids: list[str] = []
        seqs: dict[int, str | None] = {}
        records = _fasta_records(handle) if kind == "fasta" else _genbank_records(handle, path)
        try:
            for i, (title, seq) in enumerate(records):
                ids.append(title.split(None, 1)[0] if title.strip() else "")
                if keep is None or keep(i):
                    seqs[i] = seq
        except (ValueError, EOFError, OSError, lzma.LZMAError, UnicodeDecodeError) as exc:
            where = f"record {len(ids) + 1}" + (f" (after {ids[-1]!r})" if ids else "")
            raise SciclrError(f"{path}: {where}: cannot parse {kind} ({_one_line(exc)})") from None
    finally:
        raw.close()
    if not ids:
        raise SciclrError(f"{path}: no {kind} records found")
    return ids, seqs


# ----------------------------------------------------------------------------- the shard
def _preprocess_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(PREPROCESS_DEFAULTS)
    out.update({k: v for k, v in (cfg.get("preprocess") or {}).items() if v is not None})
    return out


def _per_record(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of a per-byte flag within each record (robust to empty records)."""
    cs = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=cs[1:])
    return cs[offsets[1:]] - cs[offsets[:-1]]


_REASON_KEYS = {
    "empty id": "empty_id",
    "duplicate id": "duplicate_id",
    "empty sequence": "empty_sequence",
    "not DNA": "not_dna",
    "too short": "too_short",
    "too many N": "too_many_n",
    "id not in label table": "missing_label_row",
}


def _looks_like_protein(path: Path, ids: list[str], seqs: Mapping[int, str | None]) -> None:
    """File-level check on the first 100 non-empty records (every shard reads these): if most
    are not DNA, the whole file is the wrong kind (a protein FASTA, say) → SciclrError."""
    sample = [(i, s) for i, s in sorted(seqs.items()) if s][:100]
    if not sample:
        return
    bad = []
    for i, s in sample:
        raw = np.frombuffer(s.encode("latin-1"), dtype=np.uint8)
        code = _CODE[raw[~_DROP[raw]]]
        acgtn = np.count_nonzero(code <= N_CODE) - np.count_nonzero(_IUPAC[raw])
        if (code == 255).any() or acgtn < 0.5 * max(len(code), 1):
            bad.append(i)
    if len(bad) * 2 > len(sample):
        i = bad[0]
        raw = np.frombuffer((seqs[i] or "").encode("latin-1"), dtype=np.uint8)
        letters = sorted({chr(c) for c in raw[_CODE[raw] == 255] if not _DROP[c]})[:8]
        raise SciclrError(
            f"{path}: record {i + 1} ({ids[i]!r}): does not look like DNA "
            f"({len(bad)} of the first {len(sample)} records; letters {''.join(letters) or '—'} "
            "are not nucleotides): a protein FASTA?"
        )


def preprocess_dna_shard(cfg: Mapping[str, Any], shard: int = 0, n_shards: int = 1) -> Processed:
    """Ingest the inputs of one DNA data set (records with global index ``i % n_shards ==
    shard``). See the module docstring for the rules; payload layout in
    :mod:`sciclr.domains.dna`."""
    if not 0 <= shard < n_shards:
        raise SciclrError(f"shard {shard} out of range for {n_shards} shards")
    pcfg = _preprocess_cfg(cfg)
    inputs = cfg.get("input")
    inputs = [inputs] if isinstance(inputs, str | Path) else list(inputs or [])
    if not inputs:
        raise SciclrError(f"data set {cfg.get('name', '?')!r}: no input files configured")
    fmt = str(cfg.get("format", "auto") or "auto").lower()
    if fmt in ("fa", "fna", "fas"):
        fmt = "fasta"
    if fmt in ("gb", "gbk"):
        fmt = "genbank"
    if fmt not in ("auto", "fasta", "genbank"):
        raise SciclrError(f"format must be auto, fasta or genbank, got {fmt!r}")
    min_length = int(pcfg["min_length"])
    max_n = float(pcfg["max_n_fraction"])

    # 1. read every file: all ids, sequences of this shard's records (+ the first 100 of each
    #    file for the file-level "is this DNA" check, identical in every shard)
    all_ids: list[str] = []
    sources: list[tuple[int, int]] = []  # (file index, record number in file, 1-based)
    selected: list[int] = []
    sel_seqs: list[str | None] = []
    for fi, p in enumerate(inputs):
        path = Path(p)
        base = len(all_ids)
        ids, seqs = read_records(
            path, fmt, keep=lambda i, base=base: (base + i) % n_shards == shard or i < 100
        )
        _looks_like_protein(path, ids, seqs)
        for i in range(len(ids)):
            if (base + i) % n_shards == shard:
                selected.append(base + i)
                sel_seqs.append(seqs[i])
        sources.extend((fi, i + 1) for i in range(len(ids)))
        all_ids.extend(ids)

    # 2. global duplicate rule (first occurrence wins), evaluated on all ids
    first_seen: dict[str, int] = {}
    for i, rid in enumerate(all_ids):
        first_seen.setdefault(rid, i)

    # 3. encode the shard's sequences at once
    undefined = np.array([s is None for s in sel_seqs], dtype=bool)
    strs = [s or "" for s in sel_seqs]
    raw_len = np.fromiter((len(s) for s in strs), dtype=np.int64, count=len(strs))
    raw_off = np.zeros(len(strs) + 1, dtype=np.int64)
    np.cumsum(raw_len, out=raw_off[1:])
    raw = np.frombuffer("".join(strs).encode("latin-1"), dtype=np.uint8)
    drop = _DROP[raw]
    code = _CODE[raw]
    n_drop = _per_record(drop, raw_off)
    n_gap = _per_record(_GAP[raw], raw_off)
    n_invalid = _per_record((code == 255) & ~drop, raw_off)
    n_ambig = _per_record(code == N_CODE, raw_off)
    n_iupac = _per_record(_IUPAC[raw], raw_off)
    n_lower = _per_record(_LOWER[raw], raw_off)
    n_u = _per_record(_U[raw], raw_off)
    length = raw_len - n_drop

    # 4. label table
    tasks = [t["column"] for t in cfg.get("tasks", []) or []]
    split_col = cfg.get("split_column")
    label_cols = [*tasks, *([split_col] if split_col and split_col not in tasks else [])]
    labels = None
    if cfg.get("labels"):
        labels = read_label_table(cfg["labels"], cfg.get("id_column", "id"), label_cols)
        labels.index = labels.index.astype(str).str.strip()

    # 5. rules, in order; the first that applies is the reason
    reasons: list[str | None] = []
    for j, g in enumerate(selected):
        rid = all_ids[g]
        if not rid:
            r = "empty id: header line has no identifier"
        elif first_seen[rid] != g:
            fi, rn = sources[first_seen[rid]]
            r = f"duplicate id: first seen as record {rn} of {inputs[fi]}"
        elif undefined[j] or length[j] == 0:
            r = "empty sequence" + (" (GenBank entry without bases)" if undefined[j] else "")
        elif n_invalid[j] > 0 or n_iupac[j] * 2 > length[j]:
            seg = raw[raw_off[j] : raw_off[j + 1]]
            letters = "".join(sorted({chr(c) for c in seg[(_CODE[seg] == 255) & ~_DROP[seg]]}))
            r = (
                f"not DNA: letters {letters[:10]!r} are not nucleotides"
                if letters
                else "not DNA: mostly IUPAC ambiguity letters (a protein sequence?)"
            )
        elif length[j] < min_length:
            r = f"too short: {length[j]} < min_length {min_length}"
        elif n_ambig[j] > max_n * length[j]:
            r = f"too many N: {n_ambig[j] / length[j]:.3f} > max_n_fraction {max_n}"
        elif labels is not None and rid not in labels.index:
            r = "id not in label table"
        else:
            r = None
        reasons.append(r)
    keep = np.array([r is None for r in reasons], dtype=bool)

    # 6. gather kept bases (vectorised): per-byte record id → keep mask
    rec_of_byte = np.repeat(np.arange(len(selected)), raw_len)
    keep_byte = keep[rec_of_byte] & ~drop
    codes = code[keep_byte]
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(length[keep], out=offsets[1:])
    kept_global = [g for g, k in zip(selected, keep, strict=True) if k]
    kept_ids = [all_ids[g] for g in kept_global]
    tokens, tok_off = tokenize(codes, offsets, int(pcfg["token_k"]))

    records = pd.DataFrame({"id": kept_ids})
    if labels is not None:
        sub = labels.loc[kept_ids, label_cols] if kept_ids else labels.iloc[:0][label_cols]
        for c in label_cols:
            records[c] = sub[c].to_numpy()
    records["order"] = np.asarray(kept_global, dtype=np.int64)

    rej_idx = [j for j, r in enumerate(reasons) if r is not None]
    rejects = pd.DataFrame(
        {
            "id": [all_ids[selected[j]] for j in rej_idx],
            "source": [
                f"{inputs[sources[selected[j]][0]]}:{sources[selected[j]][1]}" for j in rej_idx
            ],
            "reason": [reasons[j] for j in rej_idx],
        },
        columns=REJECT_COLUMNS,
    )

    counts: dict[str, int] = {
        "in": len(selected),
        "out": int(keep.sum()),
        "rejected": len(rej_idx),
        **{f"rejected_{key}": 0 for key in _REASON_KEYS.values()},
        "soft_masked_records": int(np.count_nonzero(n_lower[keep])),
        "soft_masked_bases": int(n_lower[keep].sum()),
        "iupac_bases": int(n_iupac[keep].sum()),
        "n_bases": int((n_ambig - n_iupac)[keep].sum()),
        "u_bases": int(n_u[keep].sum()),
        "gap_characters": int(n_gap[keep].sum()),
        "bases_out": int(len(codes)),
    }
    for j in rej_idx:
        for prefix, key in _REASON_KEYS.items():
            if reasons[j].startswith(prefix):  # type: ignore[union-attr]
                counts[f"rejected_{key}"] += 1
    payload = {
        "codes": torch.from_numpy(codes),
        "offsets": torch.from_numpy(offsets),
        "ids": kept_ids,
        "tokens": torch.from_numpy(tokens),
        "token_offsets": torch.from_numpy(tok_off),
        "token_k": int(pcfg["token_k"]),
        "max_length": int(pcfg["max_length"]),
    }
    return Processed(payload=payload, records=records, rejects=rejects, counts=counts)


def merge_dna(parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
    """Gather shards into global input order (equal to the one-shard run).

    Shards already agree on duplicates (each saw every id); an id that still occurs in two
    parts (shards of different runs, say) keeps its first occurrence and the others become
    rejects, as in a single run.
    """
    if not parts:
        raise SciclrError("merge: no shards given")
    records = pd.concat([p.records for p in parts], ignore_index=True)
    lens = np.concatenate([np.diff(np.asarray(p.payload["offsets"])) for p in parts])
    tlens = np.concatenate([np.diff(np.asarray(p.payload["token_offsets"])) for p in parts])
    codes = np.concatenate([np.asarray(p.payload["codes"], dtype=np.uint8) for p in parts])
    tokens = np.concatenate([np.asarray(p.payload["tokens"], dtype=np.int16) for p in parts])
    perm = np.argsort(records["order"].to_numpy(), kind="stable")
    records = records.iloc[perm].reset_index(drop=True)
    extra = []
    dup = records["id"].duplicated(keep="first").to_numpy()
    if dup.any():
        extra = [
            {"id": rid, "source": f"order {o}", "reason": "duplicate id: seen in another shard"}
            for rid, o in zip(records["id"][dup], records["order"][dup], strict=True)
        ]
        perm, records = perm[~dup], records[~dup].reset_index(drop=True)
    codes, offsets = _gather_ragged(codes, lens, perm)
    tokens, tok_off = _gather_ragged(tokens, tlens, perm)

    inputs = cfg.get("input")
    inputs = [str(inputs)] if isinstance(inputs, str | Path) else [str(p) for p in inputs or []]
    rejects = pd.concat([p.rejects for p in parts], ignore_index=True)
    if len(rejects):
        key = rejects["source"].map(lambda s: _source_key(s, inputs))
        rejects = rejects.iloc[np.argsort(key.to_numpy(), kind="stable")]
    if extra:
        rejects = pd.concat([rejects, pd.DataFrame(extra)], ignore_index=True)
    rejects = rejects.reset_index(drop=True)[REJECT_COLUMNS]

    counts: dict[str, int] = {}
    for p in parts:
        for k, v in p.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
    counts["out"], counts["rejected"] = len(records), len(rejects)
    if extra:
        counts["rejected_duplicate_id"] = counts.get("rejected_duplicate_id", 0) + len(extra)
    payload = dict(parts[0].payload)
    payload.update(
        codes=torch.from_numpy(codes),
        offsets=torch.from_numpy(offsets),
        ids=records["id"].tolist(),
        tokens=torch.from_numpy(tokens),
        token_offsets=torch.from_numpy(tok_off),
    )
    return Processed(payload=payload, records=records, rejects=rejects, counts=counts)


def _source_key(source: str, inputs: list[str]) -> float:
    path, _, num = str(source).rpartition(":")
    try:
        return inputs.index(path) * 1e12 + int(num)
    except ValueError:
        return float("inf")


def _gather_ragged(
    flat: np.ndarray, lens: np.ndarray, perm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``perm`` of a ragged array (flat values + per-row lengths), vectorised."""
    starts = np.zeros(len(lens), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    new_lens = lens[perm]
    offsets = np.zeros(len(perm) + 1, dtype=np.int64)
    np.cumsum(new_lens, out=offsets[1:])
    rows = np.repeat(np.arange(len(perm)), new_lens)
    pos = starts[perm][rows] + (np.arange(offsets[-1]) - offsets[:-1][rows])
    return flat[pos], offsets
