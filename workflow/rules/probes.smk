# Probes of pretrained checkpoints, declared by the run specs: one fine-tuning job per
# (checkpoint, LR) (`finetune`) so a cluster runs the sweep in parallel; one job per run
# for each registered probe in `spec["probes"]` (ncrepro.probes.registry, e.g. linear).
# With fuse_stages the train job runs them all (one file per run, probes.parquet).


rule finetune:
    input:
        unpack(data_files),
        record=res("runs/{study}/{run}/run.json"),
        ckpt=res("runs/{study}/{run}/ckpt"),
    output:
        res("probes/{study}/{run}/step{step}/finetune_lr{lr}.parquet"),
    log:
        res("logs/probes/{study}/{run}/step{step}_lr{lr}.log"),
    benchmark:
        res("benchmarks/finetune/{study}/{run}/step{step}_lr{lr}.tsv")
    wildcard_constraints:
        study=PER_STAGE_STUDIES,
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("probes", "gpu", 1),
        runtime=rule_resources("probes", "runtime", 20),
        mem_mb=rule_resources("probes", "mem_mb", 4000),
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input.record),
        data=data_dir,
        code_version=code("probes"),
    shell:
        "python -m ncrepro finetune --run-dir {params.run_dir} "
        "--data {params.data} --step {wildcards.step} --lr {wildcards.lr} --out {output} "
        "--threads {threads} > {log} 2>&1"


rule probe:
    input:
        unpack(data_files),
        record=res("runs/{study}/{run}/run.json"),
        ckpt=res("runs/{study}/{run}/ckpt"),
    output:
        res("probes/{study}/{run}/{probe}.parquet"),
    log:
        res("logs/probes/{study}/{run}/{probe}.log"),
    benchmark:
        res("benchmarks/probe/{study}/{run}/{probe}.tsv")
    wildcard_constraints:
        study=PER_STAGE_STUDIES,
        probe=SHARED_PROBES,
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("probes", "gpu", 1),
        runtime=rule_resources("probes", "runtime", 20),
        mem_mb=rule_resources("probes", "mem_mb", 4000),
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input.record),
        data=data_dir,
        code_version=probe_code,
    shell:
        "python -m ncrepro probe --name {wildcards.probe} "
        "--run-dir {params.run_dir} --data {params.data} "
        "--out {output} --threads {threads} > {log} 2>&1"
