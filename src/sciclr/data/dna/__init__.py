"""DNA data: the byte alphabet (:mod:`.codes`), canonical k-mer profiles (:mod:`.kmers`), reading
FASTA/GenBank files (:mod:`.files`) and ingest into compact arrays with rejects (:mod:`.ingest`).

Payload of a preprocessed DNA data set (``torch.save``-able, loads with ``weights_only=True``),
row ``i`` = record ``i``:

=================  =====================  ==============================================
``codes``          uint8 ``(total,)``     bases, A=0 C=1 G=2 T=3 N=4, records back to back
``offsets``        int64 ``(n+1,)``       record ``i`` is ``codes[offsets[i]:offsets[i+1]]``
``tokens``         int16 ``(total_t,)``   non-overlapping k-mer tokens (PAD=0, UNK=1, idx+2)
``token_offsets``  int64 ``(n+1,)``       ragged offsets of ``tokens``
``token_k``        int                    k of the tokens
``max_length``     int                    longest window a batch holds per record
``ids``            list[str]              record ids
=================  =====================  ==============================================
"""

from __future__ import annotations

from sciclr.lazy import lazy_exports

#: public name -> the submodule that defines it; loaded on first use (PEP 562), so that reading
#: a FASTA header (the Snakefile's input check, run at every job start on a cluster) does not
#: import torch through :mod:`.codes`
_EXPORTS = {
    "decode": "codes",
    "encode": "codes",
    "tokenize": "codes",
    "read_records": "files",
    "sniff_format": "files",
    "split_fasta": "files",
    "merge_dna": "ingest",
    "preprocess_dna_shard": "ingest",
    "canonical_kmer_index": "kmers",
    "kmer_profile": "kmers",
    "kmer_profiles_ragged": "kmers",
    "n_canonical_kmers": "kmers",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
