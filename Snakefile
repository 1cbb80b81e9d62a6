# sciclr: multi-view InfoNCE contrastive learning for DNA sequences and crystal structures.
# Run: snakemake --cores all   (see README.md; edit config/config.yaml to change what runs)
import sys

from snakemake.utils import min_version

from sciclr.config import check_inputs, validate_config
from sciclr.errors import SciclrError

min_version("8.20")


configfile: "config/config.yaml"


# one validation against the package's schema (src/sciclr/schemas/config.schema.yaml), which
# also fills every default; a mistake stops here with one line naming the key or file
try:
    validate_config(config)
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
