# lpc (Sbailò, Ghiringhelli): tables 1, 2, 4, figures 1, 3, 4, 5 and the claims table,
# from the study table that the generic stages build (train -> features -> metrics, the
# deepfool probe); fig1's toy is this study's own stage (lpc_toy).


localrules:
    lpc_figure,
    lpc_table,


# fig1's toy, at the paper's own scale in every preset (ncrepro.studies.lpc.TOY_LATENTS),
# rerun when its settings or code change.
rule lpc_toy:
    output:
        studies.input_path(studies.get("lpc").figures["fig1"].inputs["toy"], RESULTS),
    log:
        res("logs/lpc/toy.log"),
    benchmark:
        res("benchmarks/lpc_toy/toy.tsv")
    conda:
        CONDA_ENV
    threads: 1
    params:
        sheet=sheet_file("lpc"),
        toy=lambda wildcards: quoted_json(config["lpc"]["toy"]),
        code_version=study_stage_code("lpc", "toy"),
    shell:
        "python -m ncrepro study-stage --name toy --sheet {params.sheet} --out {output} "
        "> {log} 2>&1"


use rule figure as lpc_figure with:
    output:
        pdf=res("figures/{study}/{fig}.pdf"),
        png=report(
            res("figures/{study}/{fig}.png"),
            caption="../../report/lpc.rst",
            category="lpc",
            labels={"study": "lpc", "figure": "{fig}"},
        ),
        provenance=res("figures/{study}/{fig}.provenance.json"),
    benchmark:
        res("benchmarks/lpc_figure/{study}/{fig}.tsv")
    wildcard_constraints:
        study="lpc",
    conda:
        CONDA_ENV


use rule table as lpc_table with:
    output:
        csv=report(
            res("tables/{study}/{table}.csv"),
            caption="../../report/lpc_table.rst",
            category="lpc",
            labels={"study": "lpc", "table": "{table}"},
        ),
        md=res("tables/{study}/{table}.md"),
        provenance=res("tables/{study}/{table}.provenance.json"),
    benchmark:
        res("benchmarks/lpc_table/{study}/{table}.tsv")
    wildcard_constraints:
        study="lpc",
    conda:
        CONDA_ENV
