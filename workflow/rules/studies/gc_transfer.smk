# gc_transfer (Munn, Dherin, Gonzalvo 2024): figures 1-11 and the claims table, from the
# study table the generic stages build (train -> features -> metrics; the "geometric",
# "fewshot" and "gc_sampling" probes), plus this study's own stage: the bound of Figure 3,
# whose Poincare constant is estimated from every run of Figure 1 (a step over many runs).


from ncrepro.studies.gc_transfer.bound import bound_inputs


localrules:
    gc_transfer_figure,
    gc_transfer_table,
    gc_transfer_bound,


rule gc_transfer_bound:
    input:
        sheet=sheet_file("gc_transfer"),
        files=lambda wildcards: bound_inputs(
            RUN_SHEET,
            RUN_SPECS,
            wildcards.run,
            RESULTS,
            lambda run, probe: probe_file("gc_transfer", run, probe),
        ),
    output:
        res("probes/{study}/{run}/gc_bound.parquet"),
    log:
        res("logs/probes/{study}/{run}/gc_bound.log"),
    benchmark:
        res("benchmarks/gc_transfer_bound/{study}/{run}.tsv")
    wildcard_constraints:
        study="gc_transfer",
    conda:
        CONDA_ENV
    params:
        code_version=study_stage_code("gc_transfer", "gc_bound"),
    shell:
        "python -m ncrepro study-stage --name gc_bound --sheet {input.sheet} "
        "--inputs {input.files} --out {output} > {log} 2>&1"


use rule figure as gc_transfer_figure with:
    output:
        pdf=res("figures/{study}/{fig}.pdf"),
        png=report(
            res("figures/{study}/{fig}.png"),
            caption="../../report/gc_transfer.rst",
            category="gc_transfer",
            labels={"study": "gc_transfer", "figure": "{fig}"},
        ),
        provenance=res("figures/{study}/{fig}.provenance.json"),
    benchmark:
        res("benchmarks/gc_transfer_figure/{study}/{fig}.tsv")
    wildcard_constraints:
        study="gc_transfer",
    conda:
        CONDA_ENV


use rule table as gc_transfer_table with:
    output:
        csv=report(
            res("tables/{study}/{table}.csv"),
            caption="../../report/gc_transfer_claims.rst",
            category="gc_transfer",
            labels={"study": "gc_transfer", "table": "{table}"},
        ),
        md=res("tables/{study}/{table}.md"),
        provenance=res("tables/{study}/{table}.provenance.json"),
    benchmark:
        res("benchmarks/gc_transfer_table/{study}/{table}.tsv")
    wildcard_constraints:
        study="gc_transfer",
    conda:
        CONDA_ENV
