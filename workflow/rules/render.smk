# Aggregation into one Parquet table per study, and figure rendering (local rules).


rule aggregate:
    input:
        study_metric_files,
    output:
        table="results/tables/{study}.parquet",
        provenance="results/tables/{study}.provenance.json",
    log:
        "results/logs/aggregate/{study}.log",
    wildcard_constraints:
        study=RUN_STUDIES,
    conda:
        CONDA_ENV
    params:
        sheet=sheet_json,
        code_version=CODE["aggregate"],
    shell:
        ncrepro("aggregate")
        + "aggregate --study {wildcards.study} --sheet '{params.sheet}' "
        "--metrics {input} --runs-dir results/runs/{wildcards.study} --out {output.table} "
        "--code-version {params.code_version} > {log} 2>&1"


rule figure:
    input:
        figure_metric_files,
    output:
        pdf="results/figures/{study}/{fig}.pdf",
        png=report(
            "results/figures/{study}/{fig}.png",
            caption="../report/nc_limits.rst",
            category="{study}",
            labels={"study": "{study}", "figure": "{fig}"},
        ),
        provenance="results/figures/{study}/{fig}.provenance.json",
    log:
        "results/logs/figures/{study}/{fig}.log",
    wildcard_constraints:
        study=RUN_STUDIES,
    conda:
        CONDA_ENV
    params:
        config=figure_config_json,
        sheet=figure_sheet_json,
        code_version=CODE["figures"],
    shell:
        ncrepro("figures") + "figure --study {wildcards.study} --fig {wildcards.fig} "
        "--metrics {input} --sheet '{params.sheet}' "
        "--config '{params.config}' --runs-dir results/runs/{wildcards.study} "
        "--out {output.pdf} > {log} 2>&1"
