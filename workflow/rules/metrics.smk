# The metric set each study declares (ncrepro.studies), per run over all its checkpoints.


rule metrics:
    input:
        features=res("features/{study}/{run}"),
        record=res("runs/{study}/{run}/run.json"),
    output:
        res("metrics/{study}/{run}.parquet"),
    log:
        res("logs/metrics/{study}/{run}.log"),
    benchmark:
        res("benchmarks/metrics/{study}/{run}.tsv")
    wildcard_constraints:
        study=PER_STAGE_STUDIES,
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=rule_resources("metrics", "runtime", 20),
        mem_mb=rule_resources("metrics", "mem_mb", 8000),
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input.record),
        options=metric_options,
        code_version=metrics_code,
    shell:
        "python -m ncrepro metrics --study {wildcards.study} --features {input.features} "
        "--run-dir {params.run_dir} --out {output} "
        "--options '{params.options}' --code-version {params.code_version} > {log} 2>&1"
