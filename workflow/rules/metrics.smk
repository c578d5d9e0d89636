# The metric set each study declares (ncrepro.studies), per run over all its checkpoints.


rule metrics:
    input:
        features="results/features/{study}/{run}",
        record="results/runs/{study}/{run}/run.json",
    output:
        "results/metrics/{study}/{run}.parquet",
    log:
        "results/logs/metrics/{study}/{run}.log",
    benchmark:
        "results/benchmarks/metrics/{study}/{run}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=rule_resources("metrics", "runtime", 20),
        mem_mb=rule_resources("metrics", "mem_mb", 8000),
    params:
        options=metric_options,
        code_version=metrics_code,
    shell:
        "python -m ncrepro metrics --study {wildcards.study} --features {input.features} "
        "--run-dir results/runs/{wildcards.study}/{wildcards.run} --out {output} "
        "--options '{params.options}' --code-version {params.code_version} > {log} 2>&1"
