# Training: one job per run; resumes from results/scratch after a kill.


rule train:
    input:
        unpack(data_files),
    output:
        record="results/runs/{study}/{run}/run.json",
        log="results/runs/{study}/{run}/train_log.parquet",
        ckpt=directory("results/runs/{study}/{run}/ckpt"),
    log:
        "results/logs/train/{study}/{run}.log",
    benchmark:
        "results/benchmarks/train/{study}/{run}.tsv"
    priority: train_priority
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("train", "gpu", 1),
        runtime=rule_resources("train", "runtime", 30),
        mem_mb=rule_resources("train", "mem_mb", 4000),
    params:
        data=data_dir,
        spec=run_spec_json,
        scratch="results/scratch/{study}/{run}",
        device=config["device"],
        code_version=code("train"),
    shell:
        "python -m ncrepro train --spec '{params.spec}' --run {wildcards.run} "
        "--data {params.data} "
        "--out results/runs/{wildcards.study}/{wildcards.run} --scratch {params.scratch} "
        "--device {params.device} --threads {threads} "
        "--code-version {params.code_version} > {log} 2>&1"
