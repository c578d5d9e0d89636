# Templates of the figure and table rules. They match no study themselves (NEVER): each
# study's rules file instantiates them (`use rule figure as <study>_figure with: ...`)
# with its own outputs, report caption and benchmark path. Aggregation and rendering are
# cheap and local.


rule figure:
    input:
        figure_inputs,
    output:
        pdf="results/figures/{study}/{fig}.pdf",
        png="results/figures/{study}/{fig}.png",
        provenance="results/figures/{study}/{fig}.provenance.json",
    log:
        "results/logs/figures/{study}/{fig}.log",
    benchmark:
        "results/benchmarks/figure/{study}/{fig}.tsv"
    wildcard_constraints:
        study=NEVER,
    conda:
        CONDA_ENV
    params:
        sheet=lambda wildcards: sheet_file(wildcards.study),
        table=figure_table_argument,
        code_version=figure_code,
    shell:
        "python -m ncrepro figure --fig {wildcards.fig} --sheet {params.sheet} {params.table} "
        "--out {output.pdf} > {log} 2>&1"


rule table:
    input:
        table_inputs,
    output:
        csv="results/tables/{study}/{table}.csv",
        md="results/tables/{study}/{table}.md",
        provenance="results/tables/{study}/{table}.provenance.json",
    log:
        "results/logs/tables/{study}/{table}.log",
    benchmark:
        "results/benchmarks/table/{study}/{table}.tsv"
    wildcard_constraints:
        study=NEVER,
    conda:
        CONDA_ENV
    params:
        sheet=lambda wildcards: sheet_file(wildcards.study),
        code_version=table_code,
    shell:
        "python -m ncrepro table --name {wildcards.table} --sheet {params.sheet} "
        "--table results/tables/{wildcards.study}.parquet "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
