"""Parsing the Snakefile stays cheap: on a cluster every job parses it twice (the sbatch wrapper
and the srun step), so an import of torch or pymatgen there costs seconds per job."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import copy_workflow

#: what a step without a model needs none of
TORCH_STACK = ("torch", "torch_geometric", "pymatgen")
#: and what the Snakefile needs none of either
HEAVY = (*TORCH_STACK, "sklearn", "Bio")


def test_a_dry_run_imports_no_heavy_library(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "-q", "--cores", "1",
         "--configfile", "config/test.yaml"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # -X importtime: "import time: self | cumulative | <indent>module" per imported module
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, re.M))
    assert "sciclr.domains.checks" in imported  # the check ran, so the list is the real one
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, f"the Snakefile imports {heavy[:5]}"


def test_the_analysis_and_report_verbs_start_without_torch():
    """Each analysis job is a fresh ``sciclr`` process: torch would add ~2 s to each."""
    code = (
        "import sys, sciclr.cli, sciclr.analysis.steps, sciclr.analysis.report, "
        "sciclr.analysis.finetune; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{TORCH_STACK!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == "[]"
