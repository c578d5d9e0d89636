# class_encoding (Massion, Makhlouf, Massart 2026): the unconstrained-features model (MSE)
# solved to global optimality, numerics beside the paper's closed forms. No data, no
# runs, no GPU: its study table is computed directly (its own stage, `class_encoding_solve`).


localrules:
    class_encoding_figure,
    class_encoding_table,


rule class_encoding_solve:
    input:
        sheet_file("class_encoding"),
    output:
        table=res("tables/class_encoding.parquet"),
        provenance=res("tables/class_encoding.provenance.json"),
    log:
        res("logs/class_encoding/solve.log"),
    benchmark:
        res("benchmarks/class_encoding_solve/solve.tsv")
    conda:
        CONDA_ENV
    params:
        code_version=compute_code("class_encoding"),
    shell:
        "python -m ncrepro compute --sheet {input} --out {output.table} > {log} 2>&1"


use rule figure as class_encoding_figure with:
    output:
        pdf=res("figures/{study}/{fig}.pdf"),
        png=report(
            res("figures/{study}/{fig}.png"),
            caption="../../report/class_encoding.rst",
            category="class_encoding",
            labels={"study": "class_encoding", "figure": "{fig}"},
        ),
        provenance=res("figures/{study}/{fig}.provenance.json"),
    benchmark:
        res("benchmarks/class_encoding_figure/{study}/{fig}.tsv")
    wildcard_constraints:
        study="class_encoding",
    conda:
        CONDA_ENV


use rule table as class_encoding_table with:
    output:
        csv=report(
            res("tables/{study}/{table}.csv"),
            caption="../../report/class_encoding_table.rst",
            category="class_encoding",
            labels={"study": "class_encoding", "table": "{table}"},
        ),
        md=res("tables/{study}/{table}.md"),
        provenance=res("tables/{study}/{table}.provenance.json"),
    benchmark:
        res("benchmarks/class_encoding_table/{study}/{table}.tsv")
    wildcard_constraints:
        study="class_encoding",
    conda:
        CONDA_ENV
