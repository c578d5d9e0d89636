# Probes of pretrained checkpoints, declared by the run specs (`finetune`): one fine-tuning
# job per (checkpoint, LR) so a cluster runs the sweep in parallel; one linear-probe job per run.


rule finetune:
    input:
        unpack(data_files),
        record="results/runs/{study}/{run}/run.json",
        ckpt="results/runs/{study}/{run}/ckpt",
    output:
        "results/probes/{study}/{run}/step{step}/finetune_lr{lr}.parquet",
    log:
        "results/logs/probes/{study}/{run}/step{step}_lr{lr}.log",
    benchmark:
        "results/benchmarks/finetune/{study}/{run}/step{step}_lr{lr}.tsv"
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("probes", "gpu", 1),
        runtime=rule_resources("probes", "runtime", 20),
        mem_mb=rule_resources("probes", "mem_mb", 4000),
    params:
        data=data_dir,
        device=config["device"],
        code_version=code("probes"),
    shell:
        "python -m ncrepro finetune --run-dir results/runs/{wildcards.study}/{wildcards.run} "
        "--data {params.data} --step {wildcards.step} --lr {wildcards.lr} --out {output} "
        "--device {params.device} --threads {threads} > {log} 2>&1"


rule linear_probe:
    input:
        unpack(data_files),
        record="results/runs/{study}/{run}/run.json",
        ckpt="results/runs/{study}/{run}/ckpt",
    output:
        "results/probes/{study}/{run}/linear.parquet",
    log:
        "results/logs/probes/{study}/{run}/linear.log",
    benchmark:
        "results/benchmarks/linear_probe/{study}/{run}.tsv"
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("probes", "gpu", 1),
        runtime=rule_resources("probes", "runtime", 20),
        mem_mb=rule_resources("probes", "mem_mb", 4000),
    params:
        data=data_dir,
        device=config["device"],
        code_version=code("probes"),
    shell:
        "python -m ncrepro linear-probe --run-dir results/runs/{wildcards.study}/{wildcards.run} "
        "--data {params.data} --out {output} --device {params.device} "
        "--threads {threads} > {log} 2>&1"
