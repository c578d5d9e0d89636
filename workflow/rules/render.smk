# Templates of the figure and table rules. They match no study themselves (NEVER): each
# study's rules file instantiates them (`use rule figure as <study>_figure with: ...`)
# with its own outputs, report caption and benchmark path. Aggregation and rendering are
# cheap and local.


rule figure:
    input:
        figure_inputs,
    output:
        pdf=res("figures/{study}/{fig}.pdf"),
        png=res("figures/{study}/{fig}.png"),
        provenance=res("figures/{study}/{fig}.provenance.json"),
    log:
        res("logs/figures/{study}/{fig}.log"),
    benchmark:
        res("benchmarks/figure/{study}/{fig}.tsv")
    wildcard_constraints:
        study=NEVER,
    conda:
        CONDA_ENV
    params:
        sheet=lambda wildcards: sheet_file(wildcards.study),
        table=figure_table_argument,
        results=results_root,
        code_version=figure_code,
    shell:
        "python -m ncrepro figure --fig {wildcards.fig} --sheet {params.sheet} {params.table} "
        "--results {params.results} "
        "--out {output.pdf} > {log} 2>&1"


rule table:
    input:
        table_inputs,
    output:
        csv=res("tables/{study}/{table}.csv"),
        md=res("tables/{study}/{table}.md"),
        provenance=res("tables/{study}/{table}.provenance.json"),
    log:
        res("logs/tables/{study}/{table}.log"),
    benchmark:
        res("benchmarks/table/{study}/{table}.tsv")
    wildcard_constraints:
        study=NEVER,
    conda:
        CONDA_ENV
    params:
        sheet=lambda wildcards: sheet_file(wildcards.study),
        table=study_table_file,
        results=results_root,
        code_version=table_code,
    shell:
        "python -m ncrepro table --name {wildcards.table} --sheet {params.sheet} "
        "--table {params.table} --results {params.results} "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
