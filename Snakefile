# ncrepro: regenerate the figures and tables of five neural-collapse papers.
# Quick preset by default; see README.md for presets, single targets and clusters.
from snakemake.utils import min_version

min_version("9.20")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/class_encoding.smk"


localrules:
    all,
    aggregate,
    figure,
    ufm_figure,
    ufm_encoding_table,


rule all:
    default_target: True
    input:
        all_targets(),
