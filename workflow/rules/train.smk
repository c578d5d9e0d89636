# Training: one job per run; resumes from results/<preset>/scratch after a kill. With
# fuse_stages the same job then extracts the features, computes the metric set and runs
# the run's probes (the rules `features`, `metrics`, `finetune` and `probe` then match
# nothing).


rule train:
    input:
        unpack(data_files),
    output:
        **FUSED_OUTPUTS,
        record=res("runs/{study}/{run}/run.json"),
        log=res("runs/{study}/{run}/train_log.parquet"),
        ckpt=directory(res("runs/{study}/{run}/ckpt")),
    log:
        res("logs/train/{study}/{run}.log"),
    benchmark:
        res("benchmarks/train/{study}/{run}.tsv")
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
        run_dir=lambda wildcards, output: os.path.dirname(output.record),
        scratch=res("scratch/{study}/{run}"),
        code_version=code("train"),
        fused=fused_arguments,
    shell:
        "python -m ncrepro train --spec '{params.spec}' --run {wildcards.run} "
        "--data {params.data} "
        "--out {params.run_dir} --scratch {params.scratch} "
        "--threads {threads} "
        "--code-version {params.code_version} {params.fused} > {log} 2>&1"
