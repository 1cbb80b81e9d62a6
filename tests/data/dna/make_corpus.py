"""Regenerate the awkward-DNA test corpus from the bundled tiny data (deterministic).

Run from the repository root: ``python tests/data/dna/make_corpus.py``. Every sequence is a
slice of a real record of ``resources/dna/tiny/genomics_tiny.fasta``; the awkward parts
(soft-masking, IUPAC, gaps, CRLF, duplicates, byte-order marks, ...) are edits made here,
listed in README.md.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from Bio import SeqIO, bgzf
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
TINY = ROOT / "resources" / "dna" / "tiny" / "genomics_tiny.fasta"
CIF = ROOT / "resources" / "materials" / "tiny" / "cif" / "mp-2780.cif"
# real protein sequences (UniProt P0CG48 ubiquitin; P01308 insulin; P69905 haemoglobin alpha)
PROTEINS = {
    "sp|P0CG48|UBC_HUMAN": "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG",
    "sp|P01308|INS_HUMAN": "MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKTRREAEDLQVGQVELGGGPGAGSLQPLALEGSLQKRGIVEQCCTSICSLYQLENYCN",
    "sp|P69905|HBA_HUMAN": "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHFDLSHGSAQVKGHGKKVADALTNAVAHVDDMPNALSALSDLHAHKLRVDPVNFKLLSHCLLVTLAAHLPAEFTPAVHASLDKFLASVSTVLTSKYR",
}


def wrap(seq: str, width: int = 60) -> str:
    return "\n".join(seq[i : i + width] for i in range(0, len(seq), width))


def main() -> None:
    recs = list(SeqIO.parse(TINY, "fasta"))
    s = [str(r.seq) for r in recs]
    a = s[0][:300]
    soft = s[1][:120] + s[1][120:170].lower() + s[1][170:300]
    iupac = s[2][:100] + "RYSWKM" + s[2][106:200] + "nnnnN" + s[2][205:300]
    gaps = s[3][:100] + "--" + s[3][100:200] + "---" + s[3][200:300] + "*"
    rna = s[4][:300].replace("T", "U")
    many_n = s[5][:100] + "N" * 200
    wrapped = s[6][:300]
    awkward = [
        ">rec_ok1 label=A first record, plain\n" + wrap(a),
        ">rec_soft soft-masked repeat (lower case)\n" + wrap(soft),
        ">rec_iupac IUPAC codes\n" + wrap(iupac),
        ">rec_gaps alignment gaps and a stop\n" + wrap(gaps),
        ">rec_empty header without sequence\n",
        ">rec_ok1 the same id again\n" + wrap(s[7][:300]),
        ">rec_short 50 bp\n" + s[8][:50],
        ">rec_nolabel not in labels.tsv\n" + wrap(s[9][:300]),
        ">rec_protein a protein in a DNA file\n" + wrap(PROTEINS["sp|P0CG48|UBC_HUMAN"]),
        ">rec_rna U instead of T\n" + wrap(rna),
        ">rec_many_n two thirds N\n" + wrap(many_n),
        ">\n" + wrap(s[10][:300]),
        ">rec_wrapped odd wrapping, blank line, trailing spaces\n"
        + wrapped[:70]
        + "  \n"
        + wrapped[70:77]
        + "\n\n"
        + wrapped[77:],
    ]
    (HERE / "awkward.fasta").write_text("\n".join(awkward) + "\n")
    labels = ["id\tlabel\tsplit"]
    for i, rid in enumerate(
        [
            "rec_ok1",
            "rec_soft",
            "rec_iupac",
            "rec_gaps",
            "rec_empty",
            "rec_short",
            "rec_protein",
            "rec_rna",
            "rec_many_n",
            "rec_wrapped",
        ]
    ):
        labels.append(f"{rid}\t{'AB'[i % 2]}\t{['train', 'val', 'test'][i % 3]}")
    clean = [(f"clean_{i}", s[11 + i][:400]) for i in range(6)]
    labels += [
        f"{rid}\t{'AB'[i % 2]}\t{['train', 'val', 'test'][i % 3]}"
        for i, (rid, _) in enumerate(clean)
    ]
    labels += [f"gb_{i}\tA\ttrain" for i in range(3)]
    (HERE / "labels.tsv").write_text("\n".join(labels) + "\n")

    text = "".join(f">{rid} clean record\n{wrap(seq)}\n" for rid, seq in clean)
    (HERE / "clean.fasta").write_text(text)
    (HERE / "clean_crlf.fasta").write_bytes(text.replace("\n", "\r\n").encode())
    (HERE / "clean.fasta.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    with bgzf.BgzfWriter(HERE / "clean.fasta.bgz", "wb") as fh:
        fh.write(text.encode())
    gb = [
        SeqRecord(
            Seq(s[20 + i][:350]),
            id=f"gb_{i}",
            name=f"gb_{i}",
            description="slice",
            annotations={"molecule_type": "DNA"},
        )
        for i in range(3)
    ]
    SeqIO.write(gb, HERE / "clean.gb", "genbank")
    (HERE / "clean.gb.gz").write_bytes(gzip.compress((HERE / "clean.gb").read_bytes(), mtime=0))
    (HERE / "protein.fasta").write_text(
        "".join(f">{rid}\n{wrap(seq)}\n" for rid, seq in PROTEINS.items())
    )
    shutil.copyfile(CIF, HERE / "structure.cif")
    (HERE / "empty.fasta").write_text("")
    (HERE / "reads.fastq").write_text("@read1\n" + s[30][:80] + "\n+\n" + "I" * 80 + "\n")
    (HERE / "truncated.fasta.gz").write_bytes((HERE / "clean.fasta.gz").read_bytes()[:200])
    # invisible prefixes: a BOM and blank lines before the first header, an indented header,
    # a BOM in the middle (two files concatenated); a GenBank file and a label table with a BOM
    bom = b"\xef\xbb\xbf"
    parts = [f">{rid} clean record\n{wrap(seq)}\n".encode() for rid, seq in clean]
    parts[0] = bom + b"\n  \n" + parts[0]
    parts[2] = b"  " + parts[2]
    parts[4] = bom + parts[4]
    (HERE / "invisible_prefixes.fasta").write_bytes(b"".join(parts))
    (HERE / "bom.gb").write_bytes(bom + (HERE / "clean.gb").read_bytes())
    (HERE / "labels_bom.tsv").write_bytes(bom + (HERE / "labels.tsv").read_bytes())


if __name__ == "__main__":
    main()
