# Features (temp: large at paper scale) and NC metrics per run, over all its checkpoints.
# One job per run, not per checkpoint: each job pays ~6 s of torch/torchvision import.


rule features:
    input:
        unpack(data_files),
        record="results/runs/{study}/{run}/run.json",
        ckpt="results/runs/{study}/{run}/ckpt",
    output:
        temp(directory("results/features/{study}/{run}")),
    log:
        "results/logs/features/{study}/{run}.log",
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("features", "gpu", 1),
        runtime=rule_resources("features", "runtime", 20),
        mem_mb=rule_resources("features", "mem_mb", 4000),
    params:
        data=data_dir,
        device=config["device"],
        code_version=CODE["features"],
    shell:
        ncrepro("features")
        + "features --run-dir results/runs/{wildcards.study}/{wildcards.run} "
        "--data {params.data} --out {output} "
        "--device {params.device} --threads {threads} > {log} 2>&1"


rule metrics:
    input:
        features="results/features/{study}/{run}",
        record="results/runs/{study}/{run}/run.json",
    output:
        "results/metrics/{study}/{run}.parquet",
    log:
        "results/logs/metrics/{study}/{run}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=rule_resources("metrics", "runtime", 20),
        mem_mb=rule_resources("metrics", "mem_mb", 8000),
    params:
        kmeans_n_init=config["nc_limits"].get("metrics", {}).get("kmeans_n_init", 4),
        code_version=CODE["metrics"],
    shell:
        ncrepro("metrics") + "metrics --features {input.features} "
        "--run-dir results/runs/{wildcards.study}/{wildcards.run} --out {output} "
        "--kmeans-n-init {params.kmeans_n_init} "
        "--code-version {params.code_version} > {log} 2>&1"
