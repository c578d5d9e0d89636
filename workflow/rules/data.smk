# Dataset preparation: results/data/{dataset}/{train,test}.npz + manifest.json (sha256).


rule prepare_data:
    output:
        train=res("data/{dataset}/train.npz"),
        test=res("data/{dataset}/test.npz"),
        manifest=res("data/{dataset}/manifest.json"),
    log:
        res("logs/data/{dataset}.log"),
    benchmark:
        res("benchmarks/prepare_data/{dataset}.tsv")
    priority: 100
    conda:
        CONDA_ENV
    params:
        source=dataset_source,
        params=dataset_params,
        root=dataset_root,
        download=dataset_download,
        out=lambda wildcards, output: os.path.dirname(output.manifest),
        code_version=code("data"),
    shell:
        "python -m ncrepro prepare-data --source {params.source} --params '{params.params}' "
        "--root={params.root:q} --download {params.download} "
        "--out {params.out} > {log} 2>&1"
