# Penultimate features of every checkpoint of a run (temp: large at paper scale).
# One job per run, not per checkpoint: each job pays seconds of torch import.


rule features:
    input:
        unpack(data_files),
        record="results/runs/{study}/{run}/run.json",
        ckpt="results/runs/{study}/{run}/ckpt",
    output:
        temp(directory("results/features/{study}/{run}")),
    log:
        "results/logs/features/{study}/{run}.log",
    benchmark:
        "results/benchmarks/features/{study}/{run}.tsv"
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
        code_version=code("features"),
    shell:
        "python -m ncrepro features --run-dir results/runs/{wildcards.study}/{wildcards.run} "
        "--data {params.data} --out {output} "
        "--device {params.device} --threads {threads} > {log} 2>&1"
