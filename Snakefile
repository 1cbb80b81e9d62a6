# sciclr: multi-view InfoNCE contrastive learning for DNA sequences and crystal structures.
# Run: snakemake --cores all   (see README.md; edit config/config.yaml to change what runs)
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

from sciclr.config import check_inputs, check_schema, normalize, prepare_sections
from sciclr.errors import SciclrError

min_version("8.20")


configfile: "config/config.yaml"


# strict check first (one line naming the key), then defaults via snakemake's validate
try:
    check_schema(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    prepare_sections(config)
    validate(config, "workflow/schemas/config.schema.yaml")
    normalize(config)
    check_inputs(config)
except SciclrError as err:
    sys.exit(f"sciclr: {err}")


include: "workflow/rules/common.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        REPORT,
