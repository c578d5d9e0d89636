# Dataset preparation: results/data/{dataset}/{train,test}.npz + manifest.json (sha256).


rule prepare_data:
    output:
        train="results/data/{dataset}/train.npz",
        test="results/data/{dataset}/test.npz",
        manifest="results/data/{dataset}/manifest.json",
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.tsv"
    priority: 100
    conda:
        CONDA_ENV
    params:
        source=dataset_source,
        params=dataset_params,
        root=config["data"]["root"],
        download=config["data"]["download"],
        code_version=code("data"),
    shell:
        "python -m ncrepro prepare-data --source {params.source} --params '{params.params}' "
        "--root {params.root:q} --download {params.download} "
        "--out results/data/{wildcards.dataset} > {log} 2>&1"
