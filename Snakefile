# sciclr: multi-view InfoNCE contrastive learning for DNA sequences and crystal structures.
# Run: snakemake --cores all   (see README.md; edit config/config.yaml to change what runs)
import sys

from snakemake.utils import min_version

from sciclr.config import read_yaml, validate_config
from sciclr.domains.checks import check_datasets
from sciclr.errors import SciclrError

min_version("8.20")

# a YAML mistake in the default config file: one line naming file, line and column (Snakemake
# itself reads --configfile overlays and reports their syntax errors before this file runs)
try:
    read_yaml("config/config.yaml")
except SciclrError as err:
    sys.exit(f"sciclr: {err}")


configfile: "config/config.yaml"


# one validation against the package's schema (src/sciclr/schemas/config.schema.yaml), which
# also fills every default, then the inputs: a mistake stops here, before any job, with one line
try:
    validate_config(config)
    check_datasets(config)
except SciclrError as err:
    sys.exit(f"sciclr: {err}")


include: "workflow/rules/common.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/finetune.smk"


rule all:
    default_target: True
    input:
        REPORT,
