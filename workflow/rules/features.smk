# Penultimate features of every checkpoint of a run (temp: large at paper scale).
# One job per run, not per checkpoint: each job pays seconds of torch import.


rule features:
    input:
        unpack(data_files),
        record=res("runs/{study}/{run}/run.json"),
        ckpt=res("runs/{study}/{run}/ckpt"),
    output:
        temp(directory(res("features/{study}/{run}"))),
    log:
        res("logs/features/{study}/{run}.log"),
    benchmark:
        res("benchmarks/features/{study}/{run}.tsv")
    wildcard_constraints:
        study=PER_STAGE_STUDIES,
    conda:
        CONDA_ENV
    threads: config.get("threads", 2)
    resources:
        gpu=rule_resources("features", "gpu", 1),
        runtime=rule_resources("features", "runtime", 20),
        mem_mb=rule_resources("features", "mem_mb", 4000),
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input.record),
        data=data_dir,
        code_version=code("features"),
    shell:
        "python -m ncrepro features --run-dir {params.run_dir} "
        "--data {params.data} --out {output} "
        "--threads {threads} > {log} 2>&1"
