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

from sciclr.data.dna.codes import decode, encode, tokenize
from sciclr.data.dna.files import read_records, sniff_format, split_fasta
from sciclr.data.dna.ingest import merge_dna, preprocess_dna_shard
from sciclr.data.dna.kmers import (
    canonical_kmer_index,
    kmer_profile,
    kmer_profiles_ragged,
    n_canonical_kmers,
)

__all__ = [
    "canonical_kmer_index",
    "decode",
    "encode",
    "kmer_profile",
    "kmer_profiles_ragged",
    "merge_dna",
    "n_canonical_kmers",
    "preprocess_dna_shard",
    "read_records",
    "sniff_format",
    "split_fasta",
    "tokenize",
]
