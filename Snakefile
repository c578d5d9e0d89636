# ncrepro: regenerate the figures and tables of five neural-collapse papers.
# Quick preset by default; see README.md for presets, single targets and clusters.
from snakemake.utils import min_version

min_version("9.20")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/render.smk"


# Each study in the registry brings its own rules file (figure/table rules, own stages).
for study_key in studies.study_keys():

    include: f"workflow/rules/studies/{study_key}.smk"


localrules:
    all,
    aggregate,


rule all:
    default_target: True
    input:
        all_targets(),
