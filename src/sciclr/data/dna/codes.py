"""The DNA alphabet as bytes: codes, byte classes, k-mer tokens.

Bases are stored as uint8 codes ``A=0, C=1, G=2, T=3, N=4`` (``PAD=5`` after a sequence's end in
a padded batch). Every IUPAC ambiguity letter is stored as N; ``U`` reads as T. Conversion is a
byte lookup table applied with ``bytes.translate`` (a C loop, ~1 GB/s), so ingest never builds
per-record Python objects.

Non-overlapping k-mer *tokens* (for the transformer encoder) are ``k-mer index + TOKEN_OFFSET``
with ``TOKEN_PAD = 0`` and ``TOKEN_UNK = 1`` (a k-mer with an N); the k-mer index reads the
bases as base-4 digits, most significant first.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from sciclr.errors import SciclrError

__all__ = [
    "ALPHABET",
    "BYTE_CLASS",
    "CLASS_TABLE",
    "CODE_TABLE",
    "COMPLEMENT",
    "DROP_BYTES",
    "N_CLASSES",
    "N_CODE",
    "PAD",
    "TOKEN_OFFSET",
    "TOKEN_PAD",
    "TOKEN_UNK",
    "decode",
    "encode",
    "invalid_letters",
    "kmer_rc_index",
    "token_rc_table",
    "tokenize",
]

ALPHABET = "ACGTN"
N_CODE = 4
PAD = 5
#: complement of each code: A<->T, C<->G, N->N, PAD->PAD
COMPLEMENT = (3, 2, 1, 0, 4, 5)

TOKEN_PAD = 0
TOKEN_UNK = 1  # a k-mer with any N (or a masked token)
TOKEN_OFFSET = 2  # token id of k-mer index t is t + TOKEN_OFFSET

# Byte → code and byte → class tables, applied with ``bytes.translate`` (a C loop, ~1 GB/s).
_CODE = np.full(256, 255, dtype=np.uint8)  # 255 = not a nucleotide letter
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _CODE[_b + 32] = _i
_CODE[ord("U")] = _CODE[ord("u")] = 3
for _b in b"NRYSWKMBDHV":
    _CODE[_b] = _CODE[_b + 32] = N_CODE
GAP_BYTES = b"-.*"  # alignment gaps and stop marks: removed and counted
DROP_BYTES = GAP_BYTES + b"\t\r\n\v\f "  # removed from sequences
CODE_TABLE = _CODE.tobytes()

# classes: 0 = upper-case A/C/G/T (the common case), then one class per counted quirk
C_PLAIN, C_LOWER, C_N, C_N_LOWER, C_IUPAC, C_IUPAC_LOWER, C_U, C_U_LOWER = range(8)
C_GAP, C_SPACE, C_INVALID = 8, 9, 10
N_CLASSES = 11
BYTE_CLASS = np.full(256, C_INVALID, dtype=np.uint8)
for _b in b"ACGT":
    BYTE_CLASS[_b], BYTE_CLASS[_b + 32] = C_PLAIN, C_LOWER
BYTE_CLASS[ord("N")], BYTE_CLASS[ord("n")] = C_N, C_N_LOWER
for _b in b"RYSWKMBDHV":
    BYTE_CLASS[_b], BYTE_CLASS[_b + 32] = C_IUPAC, C_IUPAC_LOWER
BYTE_CLASS[ord("U")], BYTE_CLASS[ord("u")] = C_U, C_U_LOWER
for _b in GAP_BYTES:
    BYTE_CLASS[_b] = C_GAP
for _b in b"\t\r\n\v\f ":
    BYTE_CLASS[_b] = C_SPACE
CLASS_TABLE = BYTE_CLASS.tobytes()
_DECODE = np.frombuffer(b"ACGTN-", dtype=np.uint8)


def invalid_letters(seq: bytes) -> str:
    """The distinct characters of ``seq`` that are not nucleotide letters, gaps or spaces."""
    return "".join(sorted({chr(c) for c in set(seq) if BYTE_CLASS[c] == C_INVALID}))


def encode(seq: str | bytes) -> np.ndarray:
    """Encode one sequence to codes (upper-cases, IUPAC → N, drops gaps). For tests and tools;
    ingest encodes whole files at once. Raises ValueError on a non-nucleotide letter."""
    data = seq.encode("latin-1") if isinstance(seq, str) else bytes(seq)
    out = np.frombuffer(data.translate(CODE_TABLE, DROP_BYTES), dtype=np.uint8).copy()
    if (out == 255).any():
        bad = sorted({chr(c) for c in data.translate(None, DROP_BYTES) if _CODE[c] == 255})
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
    codes = np.asarray(codes, dtype=np.uint8)
    n_tok = np.diff(offsets) // k
    tok_off = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(n_tok, out=tok_off[1:])
    # drop each record's trailing partial k-mer (at most k-1 bases per record), then reshape
    tail = np.diff(offsets) - n_tok * k
    keep = np.ones(len(codes), dtype=bool)
    for j in range(1, k):
        ends = offsets[1:][tail >= j]
        keep[ends - j] = False
    kmers = codes[keep].reshape(-1, k)
    idx = (kmers[:, 0] & 3).astype(np.int32)
    unk = kmers[:, 0] > 3
    for j in range(1, k):  # in-place: half the memory traffic of building new arrays
        idx <<= 2
        idx |= kmers[:, j] & 3
        unk |= kmers[:, j] > 3
    tokens = np.where(unk, TOKEN_UNK, idx + TOKEN_OFFSET).astype(np.int16)
    return tokens, tok_off


def kmer_rc_index(k: int) -> np.ndarray:
    """Index of the reverse complement of every k-mer index in ``[0, 4**k)`` (A=0 … T=3)."""
    idx = np.arange(4**k, dtype=np.int64)
    rc = np.zeros_like(idx)
    for j in range(k):  # digit j (from the least significant) -> digit k-1-j, complemented
        digit = (idx >> (2 * j)) & 3
        rc |= (3 - digit) << (2 * (k - 1 - j))
    return rc


@lru_cache(maxsize=16)
def _token_rc_numpy(k: int) -> np.ndarray:
    rc = np.arange(4**k + TOKEN_OFFSET, dtype=np.int64)
    rc[TOKEN_OFFSET:] = kmer_rc_index(k) + TOKEN_OFFSET
    return rc


def token_rc_table(k: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Token id → token id of the reverse-complemented k-mer (PAD and UNK map to themselves)."""
    return torch.as_tensor(_token_rc_numpy(k), device=device)
