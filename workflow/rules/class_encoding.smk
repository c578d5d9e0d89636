# The class-encoding study: the unconstrained-features model (MSE) solved to global optimality,
# numerics beside the paper's closed forms. No data, no GPU.


rule ufm_solve:
    output:
        table="results/tables/class_encoding.parquet",
        provenance="results/tables/class_encoding.provenance.json",
    log:
        "results/logs/class_encoding/solve.log",
    conda:
        CONDA_ENV
    params:
        block=study_block_json("class_encoding"),
        code_version=CODE["ufm"],
    shell:
        ncrepro("ufm")
        + "ufm-solve --block '{params.block}' --out {output.table} > {log} 2>&1"


rule ufm_figure:
    input:
        "results/tables/class_encoding.parquet",
    output:
        pdf="results/figures/class_encoding/{fig}.pdf",
        png=report(
            "results/figures/class_encoding/{fig}.png",
            caption="../report/class_encoding.rst",
            category="class_encoding",
            labels={"study": "class_encoding", "figure": "{fig}"},
        ),
        provenance="results/figures/class_encoding/{fig}.provenance.json",
    log:
        "results/logs/figures/class_encoding/{fig}.log",
    conda:
        CONDA_ENV
    params:
        config=figure_config_json,
        code_version=CODE["figures"],
    shell:
        ncrepro("figures") + "figure --study class_encoding --fig {wildcards.fig} "
        "--table {input} --config '{params.config}' --out {output.pdf} > {log} 2>&1"


rule ufm_encoding_table:
    input:
        "results/tables/class_encoding.parquet",
    output:
        csv=report(
            "results/tables/class_encoding/encodings.csv",
            caption="../report/class_encoding_table.rst",
            category="class_encoding",
            labels={"study": "class_encoding", "table": "encodings"},
        ),
        md="results/tables/class_encoding/encodings.md",
        provenance="results/tables/class_encoding/encodings.provenance.json",
    log:
        "results/logs/tables/class_encoding/encodings.log",
    conda:
        CONDA_ENV
    params:
        code_version=CODE["figures"],
    shell:
        ncrepro("figures") + "ufm-table --table {input} --out-csv {output.csv} "
        "--out-md {output.md} > {log} 2>&1"
