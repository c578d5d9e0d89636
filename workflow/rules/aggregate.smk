# One tidy long table per study with runs: every metric and probe row joined with the run
# sheet (the sheet file, not the command line: a paper grid would pass the 128 KiB cap).


rule aggregate:
    input:
        aggregate_inputs,
    output:
        table=res("tables/{study}.parquet"),
        provenance=res("tables/{study}.provenance.json"),
    log:
        res("logs/aggregate/{study}.log"),
    benchmark:
        res("benchmarks/aggregate/{study}.tsv")
    wildcard_constraints:
        study=RUN_STUDIES,
    conda:
        CONDA_ENV
    params:
        sheet=lambda wildcards: sheet_file(wildcards.study),
        results=results_root,
        code_version=code("aggregate"),
    shell:
        "python -m ncrepro aggregate --sheet {params.sheet} --results {params.results} "
        "--out {output.table} "
        "--code-version {params.code_version} > {log} 2>&1"
